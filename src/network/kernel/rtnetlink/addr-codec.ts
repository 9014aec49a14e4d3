/**
 * IPv4 addresses (RTM_*ADDR): every request rik-network sends about an address, encoded, and
 * the kernel's answers decoded. Pure: no socket. Numbers from <linux/rtnetlink.h> and
 * <linux/if_addr.h>.
 */
import { ipv4Bytes, parseIpv4 } from "../../model/ipv4-cidr.js";
import { NetworkError } from "../../model/network-error.js";
import { AF_INET, attribute, type Dump, forEachAttribute, ipv4At, message, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, type Request } from "./wire.js";

export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;

/** struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32. */
const IFADDRMSG_BYTES = 8;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;

export interface AddressInfo {
  readonly index: number;
  readonly address: string;
  readonly prefixLength: number;
}

/** struct ifaddrmsg of AF_INET, flags 0 and scope 0 (RT_SCOPE_UNIVERSE). */
function ifaddrmsg(prefixLength = 0, index = 0): Buffer {
  const header = Buffer.alloc(IFADDRMSG_BYTES);
  header[0] = AF_INET;
  header[1] = prefixLength;
  header.writeUInt32LE(index, 4);
  return header;
}

/** Throws NetworkError invalid-argument, before anything is sent, for anything but dotted IPv4. */
function ipv4(address: string): Buffer {
  const ip = parseIpv4(address);
  if (ip === undefined) throw new NetworkError("invalid-argument", `"${address}" is not an IPv4 address`);
  return ipv4Bytes(ip);
}

/**
 * RTM_NEWADDR with NLM_F_CREATE | NLM_F_REPLACE, IFA_LOCAL and IFA_ADDRESS both the address,
 * as on a link without a peer (`ip addr replace $address/$prefixLength dev $index`).
 */
export function addrReplaceRequest(index: number, address: string, prefixLength: number): Request {
  const bytes = ipv4(address);
  return { type: RTM_NEWADDR, flags: NLM_F_CREATE | NLM_F_REPLACE, payload: message(ifaddrmsg(prefixLength, index), [attribute(IFA_LOCAL, bytes), attribute(IFA_ADDRESS, bytes)]) };
}

/** RTM_DELADDR of the address as addrReplaceRequest adds it (`ip addr del $address/$prefixLength dev $index`). */
export function addrDelRequest(index: number, address: string, prefixLength: number): Request {
  const bytes = ipv4(address);
  return { type: RTM_DELADDR, flags: 0, payload: message(ifaddrmsg(prefixLength, index), [attribute(IFA_LOCAL, bytes), attribute(IFA_ADDRESS, bytes)]) };
}

/**
 * RTM_DELADDR of AF_INET naming only the link: the kernel deletes the first IPv4 address the
 * link has, and answers EADDRNOTAVAIL when it has none (one step of `ip -4 addr flush dev $index`).
 */
export function addrDelFirstRequest(index: number): Request {
  return { type: RTM_DELADDR, flags: 0, payload: ifaddrmsg(0, index) };
}

/** Every IPv4 address, decoded by parseAddress (`ip -4 -j addr show`). */
export function addrDump(): Dump<AddressInfo> {
  return { request: { type: RTM_GETADDR, flags: NLM_F_DUMP, payload: ifaddrmsg() }, answer: RTM_NEWADDR, parse: parseAddress };
}

/** An RTM_NEWADDR message's payload: IFA_LOCAL, else IFA_ADDRESS; undefined when it has neither as IPv4. */
export function parseAddress(data: Buffer): AddressInfo | undefined {
  if (data.length < IFADDRMSG_BYTES) return undefined;
  let local: string | undefined;
  let address: string | undefined;
  forEachAttribute(data, IFADDRMSG_BYTES, data.length, (type, start, end) => {
    if (type === IFA_LOCAL) local = ipv4At(data, start, end);
    else if (type === IFA_ADDRESS) address = ipv4At(data, start, end);
  });
  const shown = local ?? address;
  return shown === undefined ? undefined : { index: data.readUInt32LE(4), address: shown, prefixLength: data[1]! };
}
