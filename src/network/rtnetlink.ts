import { createRtNetlink, FlagsNew, type RtNetlinkSocket } from "netlink";
import { ipv4Bytes, parseIpv4 } from "./ipv4-cidr.js";
import { NetworkError } from "./network-error.js";

const AF_INET = 2;
const IFLA_INFO_KIND = 1;
/** The main routing table; the local and broadcast routes of table 255 mirror addresses. */
const RT_TABLE_MAIN = 254;

export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  /** rtnetlink link kind ("tun", "veth", ...); undefined for physical devices and loopback. */
  readonly kind: string | undefined;
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

function kernelError(operation: string, error: unknown): NetworkError {
  const errno = errnoOf(error);
  const code = errno === "ENODEV" || errno === "ESRCH" || errno === "EADDRNOTAVAIL" ? "not-found" : "internal";
  return new NetworkError(code, `${operation} failed: ${errno ?? (error as Error).message}`, { cause: error });
}

function formatBytes(bytes: Buffer | undefined): string | undefined {
  return bytes?.length === 4 ? [...bytes].join(".") : undefined;
}

/** Reads IFLA_INFO_KIND from the raw IFLA_LINKINFO nest, which the netlink package leaves unparsed. */
export function linkKind(linkinfo: Buffer | undefined): string | undefined {
  if (linkinfo === undefined) return undefined;
  for (let offset = 0; offset + 4 <= linkinfo.length; ) {
    const length = linkinfo.readUInt16LE(offset);
    const type = linkinfo.readUInt16LE(offset + 2) & 0x3fff;
    if (length < 4) break;
    if (type === IFLA_INFO_KIND) return linkinfo.subarray(offset + 4, offset + length).toString().replace(/\0+$/, "");
    offset += (length + 3) & ~3;
  }
  return undefined;
}

/**
 * rtnetlink operations named after `ip` (link, addr, route + verb). One socket serves
 * concurrent requests; dumps are serialized because concurrent dumps on one socket break.
 */
export class Rtnetlink {
  private readonly socket: RtNetlinkSocket;
  private dumping: Promise<unknown> = Promise.resolve();

  private constructor(socket: RtNetlinkSocket) {
    this.socket = socket;
  }

  static open(): Rtnetlink {
    return new Rtnetlink(createRtNetlink());
  }

  close(): void {
    this.socket.socket.socket.close();
  }

  /** Equivalent to: `ip -j link show dev $name` (the index only). Throws "not-found" when absent. */
  async linkIndex(name: string): Promise<number> {
    try {
      const [link] = await this.socket.getLink({}, { ifname: name });
      if (link?.data.index === undefined) throw new Error("ENODEV");
      return link.data.index;
    } catch (error) {
      throw kernelError(`looking up link ${name}`, error);
    }
  }

  /** Equivalent to: `ip link set dev $name mtu $mtu up`. */
  async linkSetUp(index: number, mtu?: number): Promise<void> {
    try {
      await this.socket.setLink({ index, change: { up: true }, flags: { up: true } }, mtu === undefined ? {} : { mtu });
    } catch (error) {
      throw kernelError(`setting link ${index} up`, error);
    }
  }

  /** Equivalent to: `ip link del dev $name`. Throws "not-found" when absent. */
  async linkDel(name: string): Promise<void> {
    try {
      await this.socket.delLink({}, { ifname: name });
    } catch (error) {
      throw kernelError(`deleting link ${name}`, error);
    }
  }

  /** Equivalent to: `ip addr replace $address/$prefixLength dev $name` (idempotent). */
  async addrReplace(index: number, address: string, prefixLength: number): Promise<void> {
    const ip = parseIpv4(address);
    if (ip === undefined) throw new NetworkError("invalid-argument", `"${address}" is not an IPv4 address`);
    const bytes = ipv4Bytes(ip);
    try {
      await this.socket.newAddress(
        { family: AF_INET, prefixlen: prefixLength, index },
        { local: bytes, address: bytes },
        { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
      );
    } catch (error) {
      throw kernelError(`adding address ${address}/${prefixLength} to link ${index}`, error);
    }
  }

  private dump<T>(run: () => Promise<T>): Promise<T> {
    const result = this.dumping.then(run, run);
    this.dumping = result.catch(() => undefined);
    return result;
  }

  /** Equivalent to: `ip -d -j link show`. */
  linkList(): Promise<LinkInfo[]> {
    return this.dump(async () => {
      const links = await this.socket.getLinks();
      return links.map((link) => ({
        index: link.data.index ?? 0,
        name: link.attrs.ifname ?? "",
        kind: linkKind(link.attrs.linkinfo as Buffer | undefined),
      }));
    });
  }

  /** Equivalent to: `ip -4 -j addr show`. */
  addrList(): Promise<AddressInfo[]> {
    return this.dump(async () => {
      const addresses = await this.socket.getAddresses({ family: AF_INET });
      return addresses.flatMap((a) => {
        const address = formatBytes(a.attrs.local as Buffer | undefined) ?? formatBytes(a.attrs.address as Buffer | undefined);
        return address === undefined || a.data.index === undefined || a.data.prefixlen === undefined
          ? []
          : [{ index: a.data.index, address, prefixLength: a.data.prefixlen }];
      });
    });
  }

  /** Equivalent to: `ip -4 -j route show table main`. */
  routeList(): Promise<RouteInfo[]> {
    return this.dump(async () => {
      const routes = await this.socket.getRoutes({ family: AF_INET });
      return routes.flatMap((r) => {
        const table = (r.attrs.table as number | undefined) ?? r.data.table;
        if (table !== RT_TABLE_MAIN) return [];
        return [
          {
            destination: formatBytes(r.attrs.dst as Buffer | undefined) ?? "0.0.0.0",
            prefixLength: r.data.dstLen ?? 0,
            index: r.attrs.oif as number | undefined,
          },
        ];
      });
    });
  }
}
