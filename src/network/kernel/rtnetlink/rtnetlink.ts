import { createRtNetlink, FlagsGet, FlagsNew, type RtNetlinkSocket } from "netlink";
import { ipv4Bytes, parseIpv4 } from "../../model/ipv4-cidr.js";
import { KernelError } from "../kernel-error.js";
import { NetworkError } from "../../model/network-error.js";
import { Semaphore } from "../../concurrency/semaphore.js";

const AF_INET = 2;
const IFLA_INFO_KIND = 1;
/** The main routing table; the local and broadcast routes of table 255 mirror addresses. */
const RT_TABLE_MAIN = 254;

export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  /** rtnetlink link kind ("tun", "veth", ...); undefined for physical devices and loopback. */
  readonly kind: string | undefined;
  /** A tun device's owner and group (TUNSETOWNER, TUNSETGROUP); undefined when it has none, or is no tun device. */
  readonly tunOwner?: number | undefined;
  readonly tunGroup?: number | undefined;
  /** Administratively up (IFF_UP), whatever the carrier. */
  readonly up: boolean;
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

export interface AddressInfo {
  readonly index: number;
  readonly address: string;
  readonly prefixLength: number;
}

export interface RouteInfo {
  readonly destination: string;
  readonly prefixLength: number;
  /** Output interface index; undefined for routes without one (e.g. multipath). */
  readonly index: number | undefined;
}

/** The errno name netlink puts in its messages ("Request rejected: ENODEV"): it carries no code field. */
export function errnoOf(error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : String(error);
  return /\b(E[A-Z0-9]+)\b/.exec(message)?.[1];
}

/** The kernel's answer as a KernelError: "not found" (isKernelNotFound) is for the code that tolerates absence to decide, never the API's NOT_FOUND. */
export function kernelError(operation: string, error: unknown): KernelError {
  return new KernelError(operation, errnoOf(error), { cause: error, detail: error instanceof Error ? error.message : String(error) });
}

/** A link in a message: by its name, which is what an operator knows it by, when the caller gave it. */
function linkLabel(index: number, name: string | undefined): string {
  return name === undefined ? String(index) : `${name} (index ${index})`;
}

const IFLA_INFO_DATA = 2;
/** In a tun device's IFLA_INFO_DATA, present only when set (<linux/if_link.h>). */
const IFLA_TUN_OWNER = 1;
const IFLA_TUN_GROUP = 2;

/**
 * The kind (IFLA_INFO_KIND) from the raw IFLA_LINKINFO nest, which the netlink package leaves
 * unparsed, and, for a tun device, its owner and group.
 */
export function linkInfoOf(linkinfo: Buffer | undefined): { kind: string | undefined; tunOwner?: number; tunGroup?: number } {
  if (linkinfo === undefined) return { kind: undefined };
  let kind: string | undefined;
  let data: [number, number] | undefined;
  forEachAttribute(linkinfo, 0, linkinfo.length, (type, start, end) => {
    if (type === IFLA_INFO_KIND && kind === undefined) kind = linkinfo.toString("utf8", start, end).replace(/\0+$/, "");
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

/** The IPv4 devconf in the AF_INET part of IFLA_AF_SPEC. */
const IFLA_INET_CONF = 1;
/**
 * IPV4_DEVCONF_ROUTE_LOCALNET. A dump gives IFLA_INET_CONF as an array of u32 indexed by
 * devconf - 1; a change gives it as attributes whose type is the devconf.
 */
const IPV4_DEVCONF_ROUTE_LOCALNET = 26;

/**
 * Reads route_localnet from the raw AF_INET part of IFLA_AF_SPEC, which the netlink package
 * leaves unparsed. The link dump carries it, so reconcile need not read thousands of
 * /proc/sys files (each ~0.3 ms on a node with 5000 links).
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

const AF_INET6 = 10;
/** Attributes of the AF_INET6 part of IFLA_AF_SPEC (enum in <linux/if_link.h>). */
const IFLA_INET6_CONF = 2;
const IFLA_INET6_ADDR_GEN_MODE = 8;
/** Indexes into IFLA_INET6_CONF, an array of s32 indexed by DEVCONF_* (<linux/ipv6.h>). */
const DEVCONF_ACCEPT_RA = 3;
const DEVCONF_DISABLE_IPV6 = 26;

/**
 * Reads disable_ipv6, accept_ra and addr_gen_mode from the raw AF_INET6 part of
 * IFLA_AF_SPEC: the link dump carries them, so reconcile checks every TAP's IPv6 without a
 * /proc/sys read per TAP.
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

/** Requests in flight at once: enough to overlap round trips, few enough that the replies fit the receive buffer. */
const MAX_IN_FLIGHT = 16;
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
/** A reply lost by the kernel (ENOBUFS) would otherwise leave its request waiting forever. */
const REQUEST_TIMEOUT_MS = 5000;

/** One netlink socket, with its port id and the last socket-level error it reported. */
class Channel {
  readonly socket: RtNetlinkSocket;
  /** Given with each request: otherwise the package asks the kernel for it (getsockname) every time. */
  readonly localPort: number;
  /** The last socket-level error (e.g. ENOBUFS), reported with the requests it made fail. */
  error: Error | undefined;

  constructor(socket: RtNetlinkSocket) {
    this.socket = socket;
    this.localPort = socket.socket.address().port;
    // The native binding reports socket errors as an 'error' event from inside its
    // callback: unhandled, that aborts the whole process.
    socket.socket.on("error", (error: Error) => (this.error = error));
    socket.socket.setRecvBufferSize(RECEIVE_BUFFER_BYTES);
  }
}

/**
 * rtnetlink operations named after `ip` (link, addr, route + verb). Dumps have a socket of
 * their own, one at a time: the netlink package reads the messages of a dump as one reply
 * until its DONE, so the reply to any other request arriving in between (a dump's messages
 * come in several reads) cuts the dump short ("Multipart message not terminated properly").
 * The other socket serves concurrent requests, at most MAX_IN_FLIGHT at a time.
 */
export class Rtnetlink {
  private readonly requests: Channel;
  private readonly dumps: Channel;
  private readonly inFlight = new Semaphore(MAX_IN_FLIGHT);
  private dumping: Promise<unknown> = Promise.resolve();

  private constructor(requests: RtNetlinkSocket, dumps: RtNetlinkSocket) {
    this.requests = new Channel(requests);
    this.dumps = new Channel(dumps);
  }

  /** Every request goes through here: bounded concurrency, bounded wait. */
  private request<T>(
    operation: string,
    send: (options: { timeout: number; localPort: number }, socket: RtNetlinkSocket) => Promise<T>,
    channel: Channel = this.requests,
  ): Promise<T> {
    return this.inFlight.run(async () => {
      try {
        return await send({ timeout: REQUEST_TIMEOUT_MS, localPort: channel.localPort }, channel.socket);
      } catch (error) {
        const cause = channel.error !== undefined && /Timeout/.test((error as Error).message) ? channel.error : error;
        throw kernelError(operation, cause);
      }
    });
  }

  /** `createSocket` makes each of the two sockets; tests give one that answers as they need. */
  static open(createSocket: () => RtNetlinkSocket = createRtNetlink): Rtnetlink {
    return new Rtnetlink(createSocket(), createSocket());
  }

  close(): void {
    this.requests.socket.socket.socket.close();
    this.dumps.socket.socket.socket.close();
  }

  /**
   * Equivalent to: `ip -j link show dev $name` (the index only). Throws a KernelError when absent (isKernelNotFound).
   * Sent and read raw, without the link's statistics: the netlink package would decode every
   * attribute of the answer into objects, most of the cost of a lookup on the CREATE path.
   */
  async linkIndex(name: string): Promise<number> {
    const request = [Buffer.alloc(IFINFOMSG_BYTES), attribute(IFLA_IFNAME, cString(name)), attribute(IFLA_EXT_MASK, u32(RTEXT_FILTER_SKIP_STATS))];
    const [messages] = await this.request(`looking up link ${name}`, (options, socket) => socket.socket.request(RTM_GETLINK, request, options));
    const link = messages.find((message) => message.type === RTM_NEWLINK && message.data.length >= IFINFOMSG_BYTES);
    if (link === undefined) throw new KernelError(`looking up link ${name}`, "ENODEV");
    return link.data.readInt32LE(4);
  }

  /**
   * Equivalent to: `ip link set dev $name mtu $mtu up && sysctl -w
   * net.ipv4.conf.$name.route_localnet=$routeLocalnet`, in one request. `link` is an index or
   * a name: by name, it needs no lookup first. The sysctl is set through IFLA_INET_CONF, which
   * saves a /proc/sys write (~0.3 ms, more with thousands of links) on the CREATE path. With
   * `rename` (`ip link set dev $link name $rename ...`; `link` must then be an index), the
   * kernel renames the link before bringing it up, as a name can only change while down.
   * `name` is what the link is called when `link` is an index, for the error message only.
   * Throws a KernelError when absent (isKernelNotFound).
   */
  async linkSetUp(
    link: number | string,
    options: { readonly mtu?: number; readonly routeLocalnet?: boolean; readonly rename?: string; readonly name?: string } = {},
  ): Promise<void> {
    if (options.rename !== undefined && typeof link !== "number") {
      throw new NetworkError("invalid-argument", `renaming link ${link} to ${options.rename} needs its index, not its name`);
    }
    const header = Buffer.alloc(IFINFOMSG_BYTES);
    header.writeInt32LE(typeof link === "number" ? link : 0, 4);
    header.writeUInt32LE(IFF_UP, 8);
    header.writeUInt32LE(IFF_UP, 12);
    const request: Buffer[] = [header];
    if (typeof link === "string") request.push(attribute(IFLA_IFNAME, cString(link)));
    else if (options.rename !== undefined) request.push(attribute(IFLA_IFNAME, cString(options.rename)));
    if (options.mtu !== undefined) request.push(attribute(IFLA_MTU, u32(options.mtu)));
    if (options.routeLocalnet !== undefined) {
      const conf = attribute(IFLA_INET_CONF, attribute(IPV4_DEVCONF_ROUTE_LOCALNET, u32(options.routeLocalnet ? 1 : 0)));
      request.push(attribute(IFLA_AF_SPEC, attribute(AF_INET, conf)));
    }
    const shown = typeof link === "number" ? linkLabel(link, options.name) : link;
    const operation = options.rename === undefined ? `setting link ${shown} up` : `renaming link ${shown} to ${options.rename} and setting it up`;
    await this.request(operation, (requestOptions, socket) => socket.socket.request(RTM_SETLINK, request, requestOptions));
  }

  /** Equivalent to: `ip link set dev $name group $group`. Throws a KernelError when absent (isKernelNotFound). */
  async linkSetGroup(name: string, group: number): Promise<void> {
    await this.request(`moving link ${name} to group ${group}`, (options, socket) => socket.setLink({}, { ifname: name, group }, options));
  }

  /**
   * Equivalent to: `ip link del group $group`. The kernel unregisters the whole group in
   * one step, with one RCU grace period instead of one per device (~30 ms each).
   */
  async linkDelGroup(group: number): Promise<void> {
    await this.request(`deleting link group ${group}`, (options, socket) => socket.delLink({}, { group }, options));
  }

  /** Equivalent to: `ip link del dev $name`. Throws a KernelError when absent (isKernelNotFound). */
  async linkDel(name: string): Promise<void> {
    await this.request(`deleting link ${name}`, (options, socket) => socket.delLink({}, { ifname: name }, options));
  }

  /** Equivalent to: `ip addr del $address/$prefixLength dev $name`. `name` is the link's, for the error message only. */
  async addrDel(index: number, address: string, prefixLength: number, { name }: { readonly name?: string } = {}): Promise<void> {
    const bytes = this.addressBytes(address);
    await this.request(`removing address ${address}/${prefixLength} from link ${linkLabel(index, name)}`, (options, socket) =>
      socket.delAddress({ family: AF_INET, prefixlen: prefixLength, index }, { local: bytes, address: bytes }, options),
    );
  }

  /**
   * Equivalent to: `ip addr replace $address/$prefixLength dev $name` (idempotent). Encoded
   * here: the netlink package builds the message from objects, on the CREATE path. `name` is
   * the link's, for the error message only.
   */
  async addrReplace(index: number, address: string, prefixLength: number, { name }: { readonly name?: string } = {}): Promise<void> {
    const bytes = this.addressBytes(address);
    const header = Buffer.alloc(IFADDRMSG_BYTES);
    header[0] = AF_INET;
    header[1] = prefixLength;
    header.writeUInt32LE(index, 4);
    const request = [header, attribute(IFA_LOCAL, bytes), attribute(IFA_ADDRESS, bytes)];
    await this.request(`adding address ${address}/${prefixLength} to link ${linkLabel(index, name)}`, (options, socket) =>
      socket.socket.request(RTM_NEWADDR, request, { ...options, flags: FlagsNew.CREATE | FlagsNew.REPLACE }),
    );
  }

  private addressBytes(address: string): Buffer {
    const ip = parseIpv4(address);
    if (ip === undefined) throw new NetworkError("invalid-argument", `"${address}" is not an IPv4 address`);
    return ipv4Bytes(ip);
  }

  private dump<T>(operation: string, run: (options: { timeout: number; localPort: number }, socket: RtNetlinkSocket) => Promise<T>): Promise<T> {
    const send = () => this.request(operation, run, this.dumps);
    const result = this.dumping.then(send, send);
    this.dumping = result.catch(() => undefined);
    return result;
  }

  /**
   * A dump, parsed here rather than by the netlink package: it decodes every attribute of
   * every message into objects (link stats, VF info, ...), about 70 µs per link, where we
   * read four. With 5000 TAPs that was most of the service's start.
   */
  private rawDump<T>(operation: string, type: number, header: Buffer, parse: (data: Buffer) => T | undefined): Promise<T[]> {
    return this.dump(operation, async (options, socket) => {
      const [messages] = await socket.socket.request(type, header, { ...options, flags: FlagsGet.DUMP });
      const parsed: T[] = [];
      for (const message of messages) {
        if (message.type !== type - 2) continue; // RTM_NEW* answers RTM_GET*
        const item = parse(message.data);
        if (item !== undefined) parsed.push(item);
      }
      return parsed;
    });
  }

  /** Equivalent to: `ip -d -j link show`. */
  linkList(): Promise<LinkInfo[]> {
    return this.rawDump("listing links", RTM_GETLINK, Buffer.alloc(IFINFOMSG_BYTES), parseLink);
  }

  /** Equivalent to: `ip -4 -j addr show`. */
  addrList(): Promise<AddressInfo[]> {
    const header = Buffer.alloc(IFADDRMSG_BYTES);
    header[0] = AF_INET;
    return this.rawDump("listing addresses", RTM_GETADDR, header, parseAddress);
  }

  /** Equivalent to: `ip -4 -j route show table main`. */
  routeList(): Promise<RouteInfo[]> {
    const header = Buffer.alloc(RTMSG_BYTES);
    header[0] = AF_INET;
    return this.rawDump("listing routes", RTM_GETROUTE, header, parseRoute);
  }
}

const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_GETADDR = 22;
const RTM_GETROUTE = 26;
/** struct ifinfomsg: family, pad, type (u16), index (s32), flags (u32), change (u32). */
const IFINFOMSG_BYTES = 16;
/** struct ifaddrmsg: family, prefixlen, flags, scope, index (u32). */
const IFADDRMSG_BYTES = 8;
/** struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32). */
const RTMSG_BYTES = 12;
const IFF_UP = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_AF_SPEC = 26;
const IFLA_EXT_MASK = 29;
/** IFLA_EXT_MASK: leave the link's counters out of the answer. */
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_TABLE = 15;

/** One attribute: length and type, then the payload padded to 4 bytes. */
function attribute(type: number, payload: Uint8Array): Buffer {
  const length = 4 + payload.length;
  const encoded = Buffer.alloc((length + 3) & ~3);
  encoded.writeUInt16LE(length, 0);
  encoded.writeUInt16LE(type, 2);
  encoded.set(payload, 4);
  return encoded;
}

function u32(value: number): Buffer {
  const encoded = Buffer.alloc(4);
  encoded.writeUInt32LE(value);
  return encoded;
}

function cString(text: string): Buffer {
  return Buffer.from(`${text}\0`);
}

/** Calls `visit` with the type and payload bounds of each attribute in data[offset, end). */
function forEachAttribute(data: Buffer, offset: number, end: number, visit: (type: number, start: number, end: number) => void): void {
  while (offset + 4 <= end) {
    const length = data.readUInt16LE(offset);
    if (length < 4 || offset + length > end) break;
    visit(data.readUInt16LE(offset + 2) & 0x3fff, offset + 4, offset + length);
    offset += (length + 3) & ~3;
  }
}

/** "a.b.c.d" of a 4-byte attribute; undefined for any other length. */
function ipv4At(data: Buffer, start: number, end: number): string | undefined {
  return end - start === 4 ? `${data[start]}.${data[start + 1]}.${data[start + 2]}.${data[start + 3]}` : undefined;
}

export function parseLink(data: Buffer): LinkInfo | undefined {
  if (data.length < IFINFOMSG_BYTES) return undefined;
  let name = "";
  let mtu = 0;
  let info: ReturnType<typeof linkInfoOf> = { kind: undefined };
  let routeLocalnet: boolean | undefined;
  let ipv6: Ipv6LinkConf | undefined;
  forEachAttribute(data, IFINFOMSG_BYTES, data.length, (type, start, end) => {
    if (type === IFLA_IFNAME) name = data.toString("utf8", start, end).replace(/\0+$/, "");
    else if (type === IFLA_MTU && end - start >= 4) mtu = data.readUInt32LE(start);
    else if (type === IFLA_LINKINFO) info = linkInfoOf(data.subarray(start, end));
    else if (type === IFLA_AF_SPEC) {
      forEachAttribute(data, start, end, (family, from, to) => {
        if (family === AF_INET) routeLocalnet = routeLocalnetOf(data.subarray(from, to));
        else if (family === AF_INET6) ipv6 = ipv6ConfOf(data.subarray(from, to));
      });
    }
  });
  return { index: data.readInt32LE(4), name, ...info, up: (data.readUInt32LE(8) & IFF_UP) !== 0, mtu, routeLocalnet, ipv6 };
}

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

/** Routes of the main table only; the local and broadcast routes of table 255 mirror addresses. */
export function parseRoute(data: Buffer): RouteInfo | undefined {
  if (data.length < RTMSG_BYTES) return undefined;
  let table: number = data[4]!;
  let destination = "0.0.0.0";
  let index: number | undefined;
  forEachAttribute(data, RTMSG_BYTES, data.length, (type, start, end) => {
    if (type === RTA_TABLE && end - start >= 4) table = data.readUInt32LE(start);
    else if (type === RTA_DST) destination = ipv4At(data, start, end) ?? destination;
    else if (type === RTA_OIF && end - start >= 4) index = data.readUInt32LE(start);
  });
  return table === RT_TABLE_MAIN ? { destination, prefixLength: data[1]!, index } : undefined;
}
