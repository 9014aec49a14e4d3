import { createNetlink, type NetlinkSocket } from "netlink";
import type { Protocol } from "../model/instance-network.js";
import { NetworkError } from "../model/network-error.js";

/** A socket on the node that receives new traffic on a port: a TCP listener or a bound, unconnected UDP socket. */
export interface HostListener {
  readonly protocol: Protocol;
  /** Dotted IPv4; "0.0.0.0" for a wildcard, IPv4 or IPv6; "ipv6" for a specific IPv6 address, which a DNAT never touches. */
  readonly address: string;
  readonly port: number;
}

const NETLINK_SOCK_DIAG = 4;
/**
 * The original inet_diag request (struct inet_diag_req), still served by every kernel:
 * it carries no family, and the kernel answers it with the TCP sockets of both IPv4 and
 * IPv6, in one dump where SOCK_DIAG_BY_FAMILY needs one per family.
 */
const TCPDIAG_GETSOCK = 18;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const AF_INET = 2;
const AF_INET6 = 10;
const TCP_LISTEN = 10;
/** sizeof(struct inet_diag_req): family, src_len, dst_len, ext, the 48-byte socket id, then states and dbs. */
const REQUEST_BYTES = 60;
const STATES_OFFSET = 52;
/** Offsets in struct inet_diag_msg: family, then idiag_sport (big-endian) and idiag_src[4]. */
const SPORT_OFFSET = 4;
const SRC_OFFSET = 8;
const REQUEST_TIMEOUT_MS = 5000;

/** struct inet_diag_req asking for every TCP socket in LISTEN, IPv4 and IPv6, and nothing else. */
export function listenRequest(): Buffer {
  const request = Buffer.alloc(REQUEST_BYTES);
  request.writeUInt32LE(1 << TCP_LISTEN, STATES_OFFSET);
  return request;
}

/** The port and address of one struct inet_diag_msg, as a HostListener. Pure. */
export function parseInetDiagMessage(data: Buffer): HostListener | undefined {
  if (data.length < SRC_OFFSET + 16) return undefined;
  const family = data.readUInt8(0);
  const port = data.readUInt16BE(SPORT_OFFSET);
  const src = data.subarray(SRC_OFFSET, SRC_OFFSET + 16);
  if (family === AF_INET) return { protocol: "tcp", address: [...src.subarray(0, 4)].join("."), port };
  if (family !== AF_INET6) return undefined;
  if (src.every((b) => b === 0)) return { protocol: "tcp", address: "0.0.0.0", port };
  const mapped = src.subarray(0, 10).every((b) => b === 0) && src[10] === 0xff && src[11] === 0xff;
  return { protocol: "tcp", address: mapped ? [...src.subarray(12)].join(".") : "ipv6", port };
}

/**
 * sock_diag (NETLINK_SOCK_DIAG) for TCP listeners. /proc/net/tcp walks every bucket of the
 * established hash, ~4 ms per file on this machine whatever the namespace holds; asking for
 * LISTEN only makes the kernel walk the listening hash alone. Dumps are serialized: they
 * share one socket.
 */
export class SockDiag {
  private readonly socket: NetlinkSocket;
  /** Our netlink port id, given with each request: otherwise the package asks the kernel for it (getsockname) every time. */
  private readonly localPort: number;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(socket: NetlinkSocket) {
    this.socket = socket;
    this.localPort = socket.address().port;
    // A socket error fails the pending request; without a listener it would crash the process.
    this.socket.on("error", () => undefined);
  }

  static open(): SockDiag {
    return new SockDiag(createNetlink(NETLINK_SOCK_DIAG));
  }

  /** Equivalent to: `ss -Hltn` (IPv4 and IPv6) in the current network namespace. */
  tcpListeners(): Promise<HostListener[]> {
    const run = async (): Promise<HostListener[]> => {
      let messages;
      try {
        [messages] = await this.socket.request(TCPDIAG_GETSOCK, listenRequest(), {
          flags: NLM_F_REQUEST | NLM_F_DUMP,
          timeout: REQUEST_TIMEOUT_MS,
          localPort: this.localPort,
        });
      } catch (error) {
        throw new NetworkError("internal", `listing TCP listeners through sock_diag failed: ${(error as Error).message}`, { cause: error });
      }
      const listeners: HostListener[] = [];
      for (const message of messages) {
        if (message.type !== TCPDIAG_GETSOCK) continue;
        const listener = parseInetDiagMessage(message.data);
        if (listener !== undefined) listeners.push(listener);
      }
      return listeners;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  close(): void {
    this.socket.close();
  }
}
