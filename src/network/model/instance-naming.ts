import { createHash } from "node:crypto";

/** Every TAP this service owns starts with this prefix; nothing else on the host should. */
export const TAP_PREFIX = "rik";

const TAP_NAME_PATTERN = /^rik[a-z2-7]{12}$/;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

function digest(label: string, instanceId: string): Buffer {
  return createHash("sha256").update(label).update("\0").update(instanceId).digest();
}

/**
 * TAP name for an instance: "rik" + 12 base32 characters (60 bits) of a SHA-256 of the id,
 * 15 characters in all (IFNAMSIZ - 1). Deterministic, so a restart finds the same device;
 * the manager still refuses a second instance whose name would collide.
 */
export function tapNameFor(instanceId: string): string {
  const bytes = digest("tap", instanceId);
  let bits = 0n;
  for (let i = 0; i < 8; i++) bits = (bits << 8n) | BigInt(bytes[i]!);
  let name = TAP_PREFIX;
  for (let i = 0; i < 12; i++) name += BASE32[Number((bits >> BigInt(64 - 5 * (i + 1))) & 31n)];
  return name;
}

export function isTapName(name: string): boolean {
  return TAP_NAME_PATTERN.test(name);
}

/** A stable, locally administered, unicast MAC for the guest's NIC. */
export function guestMacFor(instanceId: string): string {
  const bytes = digest("mac", instanceId).subarray(0, 6);
  bytes[0] = (bytes[0]! & 0xfc) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}
