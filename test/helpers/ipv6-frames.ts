/**
 * Ethernet frames of IPv6 packets, built byte by byte, for a hostile guest that writes them
 * straight to its TAP (what a compromised guest kernel can do): neighbour and router
 * discovery, echo requests, UDP datagrams with any source address.
 */
import { isIPv6 } from "node:net";

const ETHERTYPE_IPV6 = 0x86dd;
export const NEXT_HEADER_TCP = 6;
const NEXT_HEADER_UDP = 17;
const NEXT_HEADER_ICMPV6 = 58;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_ROUTER_ADVERTISEMENT = 134;
export const ICMPV6_NEIGHBOR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;

/** The 16 bytes of an IPv6 address, "::" forms included. */
export function ipv6Bytes(address: string): Buffer {
  if (!isIPv6(address)) throw new Error(`not an IPv6 address: ${address}`);
  const [head = "", tail] = address.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((group) => parseInt(group, 16)));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = Buffer.alloc(16);
  all.forEach((group, index) => bytes.writeUInt16BE(group, 2 * index));
  return bytes;
}

export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(":").map((part) => parseInt(part, 16)));
}

/** The link-local address a NIC with `mac` gives itself (modified EUI-64, RFC 4291). */
export function linkLocalOf(mac: string): string {
  const b = macBytes(mac);
  const eui = [b[0]! ^ 0x02, b[1]!, b[2]!, 0xff, 0xfe, b[3]!, b[4]!, b[5]!];
  const groups = [0, 2, 4, 6].map((at) => ((eui[at]! << 8) | eui[at + 1]!).toString(16));
  return `fe80::${groups.join(":")}`;
}

/** 33:33 plus the address's last 32 bits: where an IPv6 multicast goes on Ethernet. */
export function multicastMac(address: string): string {
  const bytes = ipv6Bytes(address);
  return ["33", "33", ...[...bytes.subarray(12)].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

/** ff02::1:ffXX:XXXX, the solicited-node multicast group of `address`. */
export function solicitedNode(address: string): string {
  const bytes = ipv6Bytes(address);
  const hex = (at: number) => bytes[at]!.toString(16).padStart(2, "0");
  return `ff02::1:ff${hex(13)}:${hex(14)}${hex(15)}`;
}

function checksum(source: Buffer, destination: Buffer, nextHeader: number, payload: Buffer): number {
  const pseudo = Buffer.alloc(40);
  source.copy(pseudo, 0);
  destination.copy(pseudo, 16);
  pseudo.writeUInt32BE(payload.length, 32);
  pseudo[39] = nextHeader;
  const data = Buffer.concat([pseudo, payload, Buffer.alloc(payload.length % 2)]);
  let sum = 0;
  for (let at = 0; at < data.length; at += 2) sum += data.readUInt16BE(at);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff || 0xffff;
}

export interface Ipv6Packet {
  readonly sourceMac: string;
  readonly destinationMac: string;
  readonly source: string;
  readonly destination: string;
  readonly hopLimit?: number;
}

/** An Ethernet frame with an IPv6 header over `payload`, whose checksum (at `checksumAt`) it fills in. */
function frame(packet: Ipv6Packet, nextHeader: number, payload: Buffer, checksumAt: number): Buffer {
  const source = ipv6Bytes(packet.source);
  const destination = ipv6Bytes(packet.destination);
  payload.writeUInt16BE(0, checksumAt);
  payload.writeUInt16BE(checksum(source, destination, nextHeader, payload), checksumAt);
  const ethernet = Buffer.alloc(14);
  macBytes(packet.destinationMac).copy(ethernet, 0);
  macBytes(packet.sourceMac).copy(ethernet, 6);
  ethernet.writeUInt16BE(ETHERTYPE_IPV6, 12);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(payload.length, 4);
  ip[6] = nextHeader;
  ip[7] = packet.hopLimit ?? 255;
  source.copy(ip, 8);
  destination.copy(ip, 24);
  return Buffer.concat([ethernet, ip, payload]);
}

/** An ICMPv6 echo request with `id`. */
export function echoRequest(packet: Ipv6Packet, id: number): Buffer {
  const icmp = Buffer.alloc(16);
  icmp[0] = ICMPV6_ECHO_REQUEST;
  icmp.writeUInt16BE(id, 4);
  icmp.writeUInt16BE(1, 6);
  icmp.write("rik-ping!", 8);
  return frame(packet, NEXT_HEADER_ICMPV6, icmp, 2);
}

/** A neighbour solicitation for `target`, to its solicited-node group, with our MAC. */
export function neighborSolicitation(packet: Omit<Ipv6Packet, "destination" | "destinationMac">, target: string): Buffer {
  const destination = solicitedNode(target);
  const icmp = Buffer.alloc(32);
  icmp[0] = ICMPV6_NEIGHBOR_SOLICITATION;
  ipv6Bytes(target).copy(icmp, 8);
  icmp[24] = 1; // source link-layer address option, 8 bytes
  icmp[25] = 1;
  macBytes(packet.sourceMac).copy(icmp, 26);
  return frame({ ...packet, destination, destinationMac: multicastMac(destination) }, NEXT_HEADER_ICMPV6, icmp, 2);
}

/**
 * A router advertisement to all nodes: "I am your default router (for 30 minutes), and
 * `prefix`/64 is on this link, autoconfigure an address in it".
 */
export function routerAdvertisement(packet: Omit<Ipv6Packet, "destination" | "destinationMac">, prefix: string): Buffer {
  const icmp = Buffer.alloc(16 + 32 + 8);
  icmp[0] = ICMPV6_ROUTER_ADVERTISEMENT;
  icmp[4] = 64; // current hop limit
  icmp.writeUInt16BE(1800, 6); // router lifetime, seconds
  const option = 16;
  icmp[option] = 3; // prefix information, 32 bytes
  icmp[option + 1] = 4;
  icmp[option + 2] = 64;
  icmp[option + 3] = 0xc0; // on-link, autonomous
  icmp.writeUInt32BE(86400, option + 4);
  icmp.writeUInt32BE(14400, option + 8);
  ipv6Bytes(prefix).copy(icmp, option + 16);
  icmp[48] = 1; // source link-layer address
  icmp[49] = 1;
  macBytes(packet.sourceMac).copy(icmp, 50);
  return frame({ ...packet, destination: "ff02::1", destinationMac: "33:33:00:00:00:01" }, NEXT_HEADER_ICMPV6, icmp, 2);
}

/** A UDP datagram from `sourcePort` to `port`. */
export function udpDatagram(packet: Ipv6Packet, sourcePort: number, port: number, text: string): Buffer {
  const body = Buffer.from(text);
  const udp = Buffer.alloc(8 + body.length);
  udp.writeUInt16BE(sourcePort, 0);
  udp.writeUInt16BE(port, 2);
  udp.writeUInt16BE(udp.length, 4);
  body.copy(udp, 8);
  return frame({ ...packet, hopLimit: packet.hopLimit ?? 64 }, NEXT_HEADER_UDP, udp, 6);
}

/** A TCP SYN from `sourcePort` to `port`: the first packet of a connection. */
export function tcpSyn(packet: Ipv6Packet, sourcePort: number, port: number): Buffer {
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(sourcePort, 0);
  tcp.writeUInt16BE(port, 2);
  tcp.writeUInt32BE(0x52494b00, 4); // sequence number
  tcp[12] = 5 << 4; // header length: 5 words
  tcp[13] = 0x02; // SYN
  tcp.writeUInt16BE(64240, 14); // window
  return frame({ ...packet, hopLimit: packet.hopLimit ?? 64 }, NEXT_HEADER_TCP, tcp, 16);
}

/** What a received frame is, when it is IPv6; undefined otherwise. */
export interface ReceivedIpv6 {
  readonly source: string;
  readonly destination: string;
  readonly nextHeader: number;
  /** The ICMPv6 type, for ICMPv6. */
  readonly icmpType: number | undefined;
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let at = 0; at < 16; at += 2) groups.push(bytes.readUInt16BE(at).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::").replace(/^:::/, "::").replace(/:::$/, "::");
}

export function parseIpv6Frame(frame: Buffer): ReceivedIpv6 | undefined {
  if (frame.length < 54 || frame.readUInt16BE(12) !== ETHERTYPE_IPV6) return undefined;
  const nextHeader = frame[20]!;
  return {
    source: ipv6Text(frame.subarray(22, 38)),
    destination: ipv6Text(frame.subarray(38, 54)),
    nextHeader,
    icmpType: nextHeader === NEXT_HEADER_ICMPV6 ? frame[54] : undefined,
  };
}
