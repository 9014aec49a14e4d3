import { NetworkError } from "./network-error.js";

/** Instance ids reach rule comments and log lines, so only a safe, bounded alphabet is accepted. */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** How much of an invalid id is shown: enough to recognize it, never a whole hostile one. */
const SHOWN_CHARACTERS = 40;

/**
 * An instance id as it may be shown in a log line or an error message: a valid one as it
 * is; an invalid one quoted, cut to its first characters (with its length), and with every
 * character outside printable ASCII escaped as \uXXXX, so that no newline, terminal escape
 * or bidirectional override of a caller's reaches a log raw.
 */
export function printableInstanceId(instanceId: string): string {
  if (INSTANCE_ID_PATTERN.test(instanceId)) return instanceId;
  const head = [...instanceId].slice(0, SHOWN_CHARACTERS).join("");
  const escaped = head.replace(/[^\x20-\x7e]|["\\]/gu, (character) =>
    character === '"' || character === "\\" ? `\\${character}` : escapeCodeUnits(character),
  );
  return head.length < instanceId.length ? `"${escaped}"… (${instanceId.length} characters)` : `"${escaped}"`;
}

/** The id quoted for a message: `"fn-1"`, or an invalid one as `printableInstanceId` shows it (quoted already). */
export function quotedInstanceId(instanceId: string): string {
  return INSTANCE_ID_PATTERN.test(instanceId) ? `"${instanceId}"` : printableInstanceId(instanceId);
}

function escapeCodeUnits(character: string): string {
  let escaped = "";
  for (let at = 0; at < character.length; at++) escaped += `\\u${character.charCodeAt(at).toString(16).padStart(4, "0")}`;
  return escaped;
}

export function validateInstanceId(instanceId: string): string {
  if (!INSTANCE_ID_PATTERN.test(instanceId)) {
    throw new NetworkError(
      "invalid-argument",
      `invalid instance_id ${printableInstanceId(instanceId)}: use 1 to 128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  return instanceId;
}
