import { readFileSync } from "node:fs";
import { endianness } from "node:os";
import type { PortMapping, Protocol } from "../model/instance-network.js";
import type { HostListener, SockDiag } from "./sock-diag.js";

const TCP_LISTEN = "0A";
const UDP_UNCONNECTED = "07";

/** /proc/net prints each 32-bit word of an address in host byte order. */
function word(hex: string, littleEndian: boolean): number[] {
  const bytes = [0, 2, 4, 6].map((offset) => parseInt(hex.slice(offset, offset + 2), 16));
  return littleEndian ? bytes.reverse() : bytes;
}

function decodeAddress(hex: string, littleEndian: boolean): string {
  if (hex.length === 8) return word(hex, littleEndian).join(".");
  const bytes = [0, 8, 16, 24].flatMap((offset) => word(hex.slice(offset, offset + 8), littleEndian));
  if (bytes.every((b) => b === 0)) return "0.0.0.0";
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12).join(".") : "ipv6";
}

/**
 * Sockets that receive new traffic, from the text of /proc/net/{tcp,tcp6,udp,udp6}.
 * Pure, so that the parsing is tested without sockets.
 */
export function parseProcNetSockets(text: string, protocol: Protocol, littleEndian = endianness() === "LE"): HostListener[] {
  const listeners: HostListener[] = [];
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    const [, local, remote, state] = fields as [string, string, string, string];
    const [localHex, portHex] = local.split(":");
    if (localHex === undefined || portHex === undefined) continue;
    const receives =
      protocol === "tcp" ? state === TCP_LISTEN : state === UDP_UNCONNECTED && /^0+:0000$/.test(remote);
    if (!receives) continue;
    listeners.push({ protocol, address: decodeAddress(localHex, littleEndian), port: parseInt(portHex, 16) });
  }
  return listeners;
}

/**
 * The listener whose traffic a DNAT of `port` would take, if any: one on the wildcard
 * address, or on the address the port is bound to (every local address when unbound;
 * loopback only counts when 127.0.0.1 is DNATed too).
 */
export function shadowedListener(
  listeners: readonly HostListener[],
  port: PortMapping,
  options: { readonly localhost: boolean },
): HostListener | undefined {
  return listeners.find((listener) => {
    if (listener.protocol !== port.protocol || listener.port !== port.hostPort || listener.address === "ipv6") return false;
    if (listener.address === "0.0.0.0") return true;
    if (port.hostIp !== undefined) return listener.address === port.hostIp;
    return options.localhost || !listener.address.startsWith("127.");
  });
}

/**
 * Equivalent to: `ss -Hltn; ss -Hlun` in the current network namespace, each only when
 * `protocols` has it. TCP listeners come from sock_diag: /proc/net/tcp walks the whole
 * established hash (~4 ms a file). The UDP files cost ~0.3 ms the pair, which a TCP-only
 * create does not pay; /proc/net follows the reader's namespace. Read per create: listeners
 * come and go.
 */
export async function hostListeners(sockDiag: Pick<SockDiag, "tcpListeners">, protocols: ReadonlySet<Protocol>): Promise<HostListener[]> {
  // Synchronous, as /proc/sys in sysctl.ts: small files, faster than a trip through libuv's threads.
  const udp = protocols.has("udp") ? ["/proc/net/udp", "/proc/net/udp6"].flatMap((path) => parseProcNetSockets(readOptional(path), "udp")) : [];
  return [...(protocols.has("tcp") ? await sockDiag.tcpListeners() : []), ...udp];
}

/** A kernel without IPv6 has no /proc/net/udp6. */
function readOptional(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
