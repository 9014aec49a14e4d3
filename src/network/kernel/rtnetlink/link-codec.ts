/**
 * Links (RTM_*LINK): every request rik-network sends about a link, encoded, and the kernel's
 * answers decoded. Pure: no socket. Numbers from <linux/rtnetlink.h>, <linux/if_link.h>,
 * <linux/if.h> and <linux/ip.h>.
 */
import { AF_INET, AF_INET6, AF_UNSPEC, attribute, cString, cStringAt, type Dump, forEachAttribute, message, NLM_F_DUMP, type Request, u32 } from "./wire.js";

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;

/** struct ifinfomsg: family u8, pad u8, type u16, index s32, flags u32, change u32. */
const IFINFOMSG_BYTES = 16;
const IFF_UP = 1;

const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_AF_SPEC = 26;
const IFLA_GROUP = 27;
const IFLA_EXT_MASK = 29;
/** u8: whether the link has carrier (netif_carrier_ok), whatever its administrative state. */
const IFLA_CARRIER = 33;
/** IFLA_EXT_MASK: leave the link's counters out of the answer. */
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
/** In a tun device's IFLA_INFO_DATA, present only when set. */
const IFLA_TUN_OWNER = 1;
const IFLA_TUN_GROUP = 2;

/** The IPv4 devconf in the AF_INET part of IFLA_AF_SPEC. */
const IFLA_INET_CONF = 1;
/**
 * IPV4_DEVCONF_ROUTE_LOCALNET. A dump gives IFLA_INET_CONF as an array of u32 indexed by
 * devconf - 1; a change gives it as attributes whose type is the devconf.
 */
const IPV4_DEVCONF_ROUTE_LOCALNET = 26;

/** Attributes of the AF_INET6 part of IFLA_AF_SPEC. */
const IFLA_INET6_CONF = 2;
const IFLA_INET6_ADDR_GEN_MODE = 8;
/** Indexes into IFLA_INET6_CONF, an array of s32 indexed by DEVCONF_* (<linux/ipv6.h>). */
const DEVCONF_ACCEPT_RA = 3;
const DEVCONF_DISABLE_IPV6 = 26;

export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  /** rtnetlink link kind ("tun", "veth", ...); undefined for physical devices and loopback. */
  readonly kind: string | undefined;
  /** ifi_type, the ARPHRD_* hardware type (<linux/if_arp.h>): 1 for Ethernet, as every TAP is made. */
  readonly hardwareType?: number;
  /** A tun device's owner and group (TUNSETOWNER, TUNSETGROUP); undefined when it has none, or is no tun device. */
  readonly tunOwner?: number | undefined;
  readonly tunGroup?: number | undefined;
  /** Administratively up (IFF_UP), whatever the carrier. */
  readonly up: boolean;
  /**
   * IFLA_CARRIER: for a TAP, on while a descriptor is attached to it (TUNSETIFF), off once the
   * last one detaches, up or down. The holder can also turn it off (TUNSETCARRIER), so it is
   * a hint, not a proof, that nothing holds the TAP. Undefined when the answer lacks it.
   */
  readonly carrier?: boolean | undefined;
  readonly mtu: number;
  /** net.ipv4.conf.<name>.route_localnet; undefined when the link has no IPv4 configuration. */
  readonly routeLocalnet: boolean | undefined;
  /** The link's IPv6 settings; undefined when it has no IPv6 configuration (e.g. IPv6 off in the kernel). */
  readonly ipv6: Ipv6LinkConf | undefined;
}

/** The IPv6 settings of a link that decide whether it speaks IPv6 at all. */
export interface Ipv6LinkConf {
  /** net.ipv6.conf.<name>.disable_ipv6 */
  readonly disabled: boolean;
  /** net.ipv6.conf.<name>.accept_ra, 0 to 2 */
  readonly acceptRa: number;
  /** net.ipv6.conf.<name>.addr_gen_mode: 0 eui64, 1 none, 2 stable privacy, 3 random */
  readonly addrGenMode: number;
}

/** struct ifinfomsg with family AF_UNSPEC and type 0; index 0 means "by IFLA_IFNAME". */
function ifinfomsg(index = 0, flags = 0, change = 0): Buffer {
  const header = Buffer.alloc(IFINFOMSG_BYTES);
  header[0] = AF_UNSPEC;
  header.writeInt32LE(index, 4);
  header.writeUInt32LE(flags, 8);
  header.writeUInt32LE(change, 12);
  return header;
}

/** RTM_GETLINK of one link by name, without its statistics (`ip link show dev $name`). */
export function linkGetRequest(name: string): Request {
  return { type: RTM_GETLINK, flags: 0, payload: message(ifinfomsg(), [attribute(IFLA_IFNAME, cString(name)), attribute(IFLA_EXT_MASK, u32(RTEXT_FILTER_SKIP_STATS))]) };
}

/** The index of the link in the answer to linkGetRequest; undefined when it holds none. */
export function linkIndexOf(answer: readonly { readonly type: number; readonly data: Buffer }[]): number | undefined {
  const link = answer.find((reply) => reply.type === RTM_NEWLINK && reply.data.length >= IFINFOMSG_BYTES);
  return link?.data.readInt32LE(4);
}

/** RTM_GETLINK of one link by index, without its statistics (`ip -d link show dev $name`): answered by one RTM_NEWLINK that parseLink reads. */
export function linkGetByIndexRequest(index: number): Request {
  return { type: RTM_GETLINK, flags: 0, payload: message(ifinfomsg(index), [attribute(IFLA_EXT_MASK, u32(RTEXT_FILTER_SKIP_STATS))]) };
}

/** A link by name, or by index, with the name it is to take (`rename`). */
export type LinkTarget = { readonly name: string } | { readonly index: number; readonly rename?: string | undefined };

/**
 * RTM_SETLINK that brings a link up (IFF_UP in flags and change), with its MTU and
 * route_localnet when given (`ip link set dev $link [name $rename] [mtu $mtu] up`, and
 * `sysctl net.ipv4.conf.$link.route_localnet`). route_localnet goes in IFLA_AF_SPEC /
 * AF_INET / IFLA_INET_CONF as one attribute whose type is the devconf.
 */
export function linkSetUpRequest(link: LinkTarget, options: { readonly mtu?: number | undefined; readonly routeLocalnet?: boolean | undefined } = {}): Request {
  const attributes: Buffer[] = [];
  if ("name" in link) attributes.push(attribute(IFLA_IFNAME, cString(link.name)));
  else if (link.rename !== undefined) attributes.push(attribute(IFLA_IFNAME, cString(link.rename)));
  if (options.mtu !== undefined) attributes.push(attribute(IFLA_MTU, u32(options.mtu)));
  if (options.routeLocalnet !== undefined) {
    const conf = attribute(IFLA_INET_CONF, attribute(IPV4_DEVCONF_ROUTE_LOCALNET, u32(options.routeLocalnet ? 1 : 0)));
    attributes.push(attribute(IFLA_AF_SPEC, attribute(AF_INET, conf)));
  }
  return { type: RTM_SETLINK, flags: 0, payload: message(ifinfomsg("index" in link ? link.index : 0, IFF_UP, IFF_UP), attributes) };
}

/**
 * RTM_SETLINK that brings a link down (IFF_UP in change, not in flags), by index, and with
 * `rename` renames it too (`ip link set dev $link down [name $rename]`). The kernel renames
 * before it applies the flags, so a rename in the same message works only on a kernel that
 * renames links that are up (6.2 and later); linkRenameRequest after this one works on any.
 */
export function linkSetDownRequest(index: number, rename?: string): Request {
  const attributes = rename === undefined ? [] : [attribute(IFLA_IFNAME, cString(rename))];
  return { type: RTM_SETLINK, flags: 0, payload: message(ifinfomsg(index, 0, IFF_UP), attributes) };
}

/** RTM_SETLINK of a link's name only, by index (`ip link set dev $link name $rename`); no flag changes. */
export function linkRenameRequest(index: number, rename: string): Request {
  return { type: RTM_SETLINK, flags: 0, payload: message(ifinfomsg(index), [attribute(IFLA_IFNAME, cString(rename))]) };
}

/** RTM_SETLINK of a link's group, by name (`ip link set dev $name group $group`). */
export function linkSetGroupRequest(name: string, group: number): Request {
  return { type: RTM_SETLINK, flags: 0, payload: message(ifinfomsg(), [attribute(IFLA_IFNAME, cString(name)), attribute(IFLA_GROUP, u32(group))]) };
}

/** RTM_DELLINK by name (`ip link del dev $name`). */
export function linkDelRequest(name: string): Request {
  return { type: RTM_DELLINK, flags: 0, payload: message(ifinfomsg(), [attribute(IFLA_IFNAME, cString(name))]) };
}

/** RTM_DELLINK of every link of a group: no index, no name, only IFLA_GROUP (`ip link del group $group`). */
export function linkDelGroupRequest(group: number): Request {
  return { type: RTM_DELLINK, flags: 0, payload: message(ifinfomsg(), [attribute(IFLA_GROUP, u32(group))]) };
}

/** Every link, decoded by parseLink (`ip -d -j link show`). */
export function linkDump(): Dump<LinkInfo> {
  return { request: { type: RTM_GETLINK, flags: NLM_F_DUMP, payload: ifinfomsg() }, answer: RTM_NEWLINK, parse: parseLink };
}

/** An RTM_NEWLINK message's payload; undefined when too short to hold struct ifinfomsg. */
export function parseLink(data: Buffer): LinkInfo | undefined {
  if (data.length < IFINFOMSG_BYTES) return undefined;
  let name = "";
  let mtu = 0;
  let info: ReturnType<typeof linkInfoOf> = { kind: undefined };
  let routeLocalnet: boolean | undefined;
  let ipv6: Ipv6LinkConf | undefined;
  let carrier: boolean | undefined;
  forEachAttribute(data, IFINFOMSG_BYTES, data.length, (type, start, end) => {
    if (type === IFLA_IFNAME) name = cStringAt(data, start, end);
    else if (type === IFLA_CARRIER && end > start) carrier = data[start] !== 0;
    else if (type === IFLA_MTU && end - start >= 4) mtu = data.readUInt32LE(start);
    else if (type === IFLA_LINKINFO) info = linkInfoOf(data.subarray(start, end));
    else if (type === IFLA_AF_SPEC) {
      forEachAttribute(data, start, end, (family, from, to) => {
        if (family === AF_INET) routeLocalnet = routeLocalnetOf(data.subarray(from, to));
        else if (family === AF_INET6) ipv6 = ipv6ConfOf(data.subarray(from, to));
      });
    }
  });
  return { index: data.readInt32LE(4), name, ...info, hardwareType: data.readUInt16LE(2), up: (data.readUInt32LE(8) & IFF_UP) !== 0, carrier, mtu, routeLocalnet, ipv6 };
}

/** The kind (IFLA_INFO_KIND) from the IFLA_LINKINFO nest, and, for a tun device, its owner and group. */
export function linkInfoOf(linkinfo: Buffer | undefined): { kind: string | undefined; tunOwner?: number; tunGroup?: number } {
  if (linkinfo === undefined) return { kind: undefined };
  let kind: string | undefined;
  let data: [number, number] | undefined;
  forEachAttribute(linkinfo, 0, linkinfo.length, (type, start, end) => {
    if (type === IFLA_INFO_KIND && kind === undefined) kind = cStringAt(linkinfo, start, end);
    else if (type === IFLA_INFO_DATA) data = [start, end];
  });
  if (kind !== "tun" || data === undefined) return { kind };
  const info: { kind: string; tunOwner?: number; tunGroup?: number } = { kind };
  forEachAttribute(linkinfo, data[0], data[1], (type, start, end) => {
    if (end - start < 4) return;
    if (type === IFLA_TUN_OWNER) info.tunOwner = linkinfo.readUInt32LE(start);
    else if (type === IFLA_TUN_GROUP) info.tunGroup = linkinfo.readUInt32LE(start);
  });
  return info;
}

/**
 * route_localnet from the AF_INET part of IFLA_AF_SPEC. The link dump carries it, so
 * reconcile need not read a /proc/sys file per link.
 */
export function routeLocalnetOf(inet: Buffer | undefined): boolean | undefined {
  if (inet === undefined) return undefined;
  let routeLocalnet: boolean | undefined;
  let seen = false;
  forEachAttribute(inet, 0, inet.length, (type, start, end) => {
    if (type !== IFLA_INET_CONF || seen) return;
    seen = true;
    const at = start + 4 * (IPV4_DEVCONF_ROUTE_LOCALNET - 1);
    routeLocalnet = at + 4 <= end ? inet.readUInt32LE(at) !== 0 : undefined;
  });
  return routeLocalnet;
}

/**
 * disable_ipv6, accept_ra and addr_gen_mode from the AF_INET6 part of IFLA_AF_SPEC: the link
 * dump carries them, so reconcile checks every TAP's IPv6 without a /proc/sys read per TAP.
 */
export function ipv6ConfOf(inet6: Buffer | undefined): Ipv6LinkConf | undefined {
  if (inet6 === undefined) return undefined;
  let conf: { disabled: boolean; acceptRa: number } | undefined;
  let addrGenMode: number | undefined;
  forEachAttribute(inet6, 0, inet6.length, (type, start, end) => {
    if (type === IFLA_INET6_CONF && conf === undefined && start + 4 * (DEVCONF_DISABLE_IPV6 + 1) <= end) {
      conf = { disabled: inet6.readInt32LE(start + 4 * DEVCONF_DISABLE_IPV6) !== 0, acceptRa: inet6.readInt32LE(start + 4 * DEVCONF_ACCEPT_RA) };
    } else if (type === IFLA_INET6_ADDR_GEN_MODE && end > start) {
      addrGenMode = inet6[start];
    }
  });
  return conf === undefined || addrGenMode === undefined ? undefined : { ...conf, addrGenMode };
}
