/**
 * The netlink wire primitives the rtnetlink codecs share: a request's shape and flags
 * (<linux/netlink.h>), and struct rtattr (<linux/rtnetlink.h>), written and read. Pure: no socket.
 */

/**
 * One request as the socket sends it. The socket writes struct nlmsghdr (length, type,
 * flags | NLM_F_REQUEST | NLM_F_ACK, sequence, port) in front of `payload`.
 */
export interface Request {
  /** RTM_* message type. */
  readonly type: number;
  /** NLM_F_* flags beyond NLM_F_REQUEST and NLM_F_ACK. */
  readonly flags: number;
  /** The family header (struct ifinfomsg, ifaddrmsg, rtmsg), then its attributes. */
  readonly payload: Buffer;
}

/** A dump: its request, the type of the messages that answer it, and their decoder (undefined: skip the message). */
export interface Dump<T> {
  readonly request: Request;
  readonly answer: number;
  readonly parse: (data: Buffer) => T | undefined;
}

/** Modifiers of a new request (<linux/netlink.h>). */
export const NLM_F_REPLACE = 0x100;
export const NLM_F_CREATE = 0x400;
/** NLM_F_ROOT | NLM_F_MATCH: every object, in a multipart answer ending with NLMSG_DONE. */
export const NLM_F_DUMP = 0x300;

/** Address families (<linux/socket.h>). */
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

/** struct rtattr: len (u16, header included, padding excluded), type (u16). */
const RTATTR_HEADER_BYTES = 4;
/** The flag bits of an attribute's type (NLA_F_NESTED, NLA_F_NET_BYTEORDER), which name no attribute. */
const NLA_TYPE_MASK = 0x3fff;

/** One attribute: struct rtattr, then the payload, padded with zeros to 4 bytes. */
export function attribute(type: number, payload: Uint8Array): Buffer {
  const length = RTATTR_HEADER_BYTES + payload.length;
  const encoded = Buffer.alloc((length + 3) & ~3);
  encoded.writeUInt16LE(length, 0);
  encoded.writeUInt16LE(type, 2);
  encoded.set(payload, RTATTR_HEADER_BYTES);
  return encoded;
}

/** A u32 payload, in host order (little-endian on every node rik-network runs on). */
export function u32(value: number): Buffer {
  const encoded = Buffer.alloc(4);
  encoded.writeUInt32LE(value);
  return encoded;
}

/** A NUL-terminated string payload (IFLA_IFNAME). */
export function cString(text: string): Buffer {
  return Buffer.from(`${text}\0`);
}

/** A fixed-size family header followed by its attributes, as one payload. */
export function message(header: Buffer, attributes: readonly Buffer[] = []): Buffer {
  return attributes.length === 0 ? header : Buffer.concat([header, ...attributes]);
}

/**
 * Calls `visit` with the type and payload bounds of each attribute in data[offset, end);
 * stops at the first whose length is short or runs past `end`.
 */
export function forEachAttribute(data: Buffer, offset: number, end: number, visit: (type: number, start: number, end: number) => void): void {
  while (offset + RTATTR_HEADER_BYTES <= end) {
    const length = data.readUInt16LE(offset);
    if (length < RTATTR_HEADER_BYTES || offset + length > end) break;
    visit(data.readUInt16LE(offset + 2) & NLA_TYPE_MASK, offset + RTATTR_HEADER_BYTES, offset + length);
    offset += (length + 3) & ~3;
  }
}

/** A NUL-terminated string payload, without its NULs. */
export function cStringAt(data: Buffer, start: number, end: number): string {
  return data.toString("utf8", start, end).replace(/\0+$/, "");
}

/** "a.b.c.d" of a 4-byte payload; undefined for any other length. */
export function ipv4At(data: Buffer, start: number, end: number): string | undefined {
  return end - start === 4 ? `${data[start]}.${data[start + 1]}.${data[start + 2]}.${data[start + 3]}` : undefined;
}
