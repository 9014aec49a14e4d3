import { createRtNetlink, type RtNetlinkSocket } from "netlink";
import { KernelError } from "../kernel-error.js";
import { NetworkError } from "../../model/network-error.js";
import { Semaphore } from "../../concurrency/semaphore.js";
import { addrDelFirstRequest, addrDelRequest, addrDump, addrReplaceRequest, type AddressInfo } from "./addr-codec.js";
import {
  type LinkInfo,
  linkDelGroupRequest,
  linkDelRequest,
  linkDump,
  linkGetByIndexRequest,
  linkGetRequest,
  linkIndexOf,
  linkRenameRequest,
  linkSetDownRequest,
  linkSetGroupRequest,
  linkSetUpRequest,
  parseLink,
  RTM_NEWLINK,
} from "./link-codec.js";
import { OffThreadSocket } from "./off-thread-socket.js";
import { routeDump, type RouteInfo } from "./route-codec.js";
import type { Dump, Request } from "./wire.js";

export type { AddressInfo } from "./addr-codec.js";
export type { Ipv6LinkConf, LinkInfo } from "./link-codec.js";
export type { RouteInfo } from "./route-codec.js";

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
 * rtnetlink operations named after `ip` (link, addr, route + verb), over the codecs of this
 * folder: each method encodes its request there, and the netlink package only carries it
 * (the socket, sequence numbers, multipart answers, errors). Dumps have a socket of their
 * own, one at a time: the package reads the messages of a dump as one reply until its DONE,
 * so the reply to any other request arriving in between (a dump's messages come in several
 * reads) cuts the dump short ("Multipart message not terminated properly"). Another socket
 * serves concurrent requests, at most MAX_IN_FLIGHT at a time. Link deletions, which the kernel
 * answers only after an RCU grace period spent inside sendmsg(2), go through a third socket,
 * in a worker thread (OffThreadSocket), so that the wait blocks that thread and not the event loop.
 */
export class Rtnetlink {
  private readonly requests: Channel;
  private readonly dumps: Channel;
  /** Undefined with the sockets a test gives: its deletions go through `requests`. */
  private readonly deletions: OffThreadSocket | undefined;
  private readonly inFlight = new Semaphore(MAX_IN_FLIGHT);
  private dumping: Promise<unknown> = Promise.resolve();

  private constructor(requests: RtNetlinkSocket, dumps: RtNetlinkSocket, deletions: OffThreadSocket | undefined) {
    this.requests = new Channel(requests);
    this.dumps = new Channel(dumps);
    this.deletions = deletions;
  }

  /** A request the kernel answers only after an RCU grace period: sent from the worker thread. */
  private async sendOffThread(operation: string, request: Request): Promise<void> {
    if (this.deletions === undefined) {
      await this.send(operation, request);
      return;
    }
    try {
      await this.deletions.request(request);
    } catch (error) {
      throw kernelError(operation, error);
    }
  }

  /**
   * Every request goes through here: bounded concurrency, bounded wait, and the kernel's
   * refusal as a KernelError. Resolves with the answer's messages (none for a bare ACK).
   */
  private send(operation: string, request: Request, channel: Channel = this.requests): Promise<{ type: number; data: Buffer }[]> {
    return this.inFlight.run(async () => {
      try {
        const options = { timeout: REQUEST_TIMEOUT_MS, localPort: channel.localPort, flags: request.flags };
        const [messages] = await channel.socket.socket.request(request.type, request.payload, options);
        return messages;
      } catch (error) {
        const cause = channel.error !== undefined && /Timeout/.test((error as Error).message) ? channel.error : error;
        throw kernelError(operation, cause);
      }
    });
  }

  /**
   * `createSocket` makes each socket; tests give one that answers as they need, and then
   * every request, deletions included, goes through it on the calling thread.
   */
  static open(createSocket?: () => RtNetlinkSocket): Rtnetlink {
    if (createSocket !== undefined) return new Rtnetlink(createSocket(), createSocket(), undefined);
    return new Rtnetlink(createRtNetlink(), createRtNetlink(), new OffThreadSocket(REQUEST_TIMEOUT_MS));
  }

  /** Closes the sockets; resolves once the deletions' worker thread has ended. */
  async close(): Promise<void> {
    this.requests.socket.socket.socket.close();
    this.dumps.socket.socket.socket.close();
    await this.deletions?.close();
  }

  /**
   * Equivalent to: `ip -j link show dev $name` (the index only). Throws a KernelError when absent (isKernelNotFound).
   * Asks for the link without its statistics, and reads only its index from the answer.
   */
  async linkIndex(name: string): Promise<number> {
    const operation = `looking up link ${name}`;
    const index = linkIndexOf(await this.send(operation, linkGetRequest(name)));
    if (index === undefined) throw new KernelError(operation, "ENODEV");
    return index;
  }

  /**
   * Equivalent to: `ip link set dev $name mtu $mtu up && sysctl -w
   * net.ipv4.conf.$name.route_localnet=$routeLocalnet`, in one request. `link` is an index or
   * a name: by name, it needs no lookup first. The sysctl is set through IFLA_INET_CONF, which
   * saves a /proc/sys write per link on the CREATE path. With `rename` (`ip link set dev $link
   * name $rename ...`; `link` must then be an index), the kernel renames the link before
   * bringing it up, as a name can only change while down. `name` is what the link is called
   * when `link` is an index, for the error message only.
   * Throws a KernelError when absent (isKernelNotFound).
   */
  async linkSetUp(
    link: number | string,
    options: { readonly mtu?: number; readonly routeLocalnet?: boolean; readonly rename?: string; readonly name?: string } = {},
  ): Promise<void> {
    if (options.rename !== undefined && typeof link !== "number") {
      throw new NetworkError("invalid-argument", `renaming link ${link} to ${options.rename} needs its index, not its name`);
    }
    const request = linkSetUpRequest(typeof link === "number" ? { index: link, rename: options.rename } : { name: link }, options);
    const shown = typeof link === "number" ? linkLabel(link, options.name) : link;
    await this.send(options.rename === undefined ? `setting link ${shown} up` : `renaming link ${shown} to ${options.rename} and setting it up`, request);
  }

  /**
   * Equivalent to: `ip -d -j link show dev $name`, by index: the link as the dump shows it, its
   * carrier included. `name` is what the caller knows it by, for the error message only.
   * Throws a KernelError when absent (isKernelNotFound).
   */
  async linkGet(index: number, { name }: { readonly name?: string } = {}): Promise<LinkInfo> {
    const operation = `looking up link ${linkLabel(index, name)}`;
    const answer = (await this.send(operation, linkGetByIndexRequest(index))).find((reply) => reply.type === RTM_NEWLINK);
    const link = answer === undefined ? undefined : parseLink(answer.data);
    if (link === undefined) throw new KernelError(operation, "ENODEV");
    return link;
  }

  /**
   * Equivalent to: `ip link set dev $name down [name $rename]`, by index, in one request: with
   * `rename`, only on a kernel that renames links that are up (6.2 and later; EBUSY before),
   * since it renames before it applies the flags. `name` is what the link is called, for the
   * error message only. Throws a KernelError when absent (isKernelNotFound).
   */
  async linkSetDown(index: number, { rename, name }: { readonly rename?: string; readonly name?: string } = {}): Promise<void> {
    const shown = linkLabel(index, name);
    await this.send(rename === undefined ? `setting link ${shown} down` : `setting link ${shown} down and renaming it to ${rename}`, linkSetDownRequest(index, rename));
  }

  /**
   * Equivalent to: `ip link set dev $name name $rename`, by index. A link that is up can be
   * renamed only from kernel 6.2 on (EBUSY before). `name` is what the link is called, for the
   * error message only. Throws a KernelError when absent (isKernelNotFound).
   */
  async linkRename(index: number, rename: string, { name }: { readonly name?: string } = {}): Promise<void> {
    await this.send(`renaming link ${linkLabel(index, name)} to ${rename}`, linkRenameRequest(index, rename));
  }

  /** Equivalent to: `ip link set dev $name group $group`. Throws a KernelError when absent (isKernelNotFound). */
  async linkSetGroup(name: string, group: number): Promise<void> {
    await this.send(`moving link ${name} to group ${group}`, linkSetGroupRequest(name, group));
  }

  /**
   * Equivalent to: `ip link del group $group`. The kernel unregisters the whole group in
   * one step, with one RCU grace period instead of one per device.
   */
  async linkDelGroup(group: number): Promise<void> {
    await this.sendOffThread(`deleting link group ${group}`, linkDelGroupRequest(group));
  }

  /** Equivalent to: `ip link del dev $name`. Throws a KernelError when absent (isKernelNotFound). */
  async linkDel(name: string): Promise<void> {
    await this.sendOffThread(`deleting link ${name}`, linkDelRequest(name));
  }

  /**
   * Equivalent to: `ip addr del $address/$prefixLength dev $name`. `name` is the link's, for
   * the error message only. A malformed address is a NetworkError, and sends nothing.
   */
  async addrDel(index: number, address: string, prefixLength: number, { name }: { readonly name?: string } = {}): Promise<void> {
    const request = addrDelRequest(index, address, prefixLength);
    await this.send(`removing address ${address}/${prefixLength} from link ${linkLabel(index, name)}`, request);
  }

  /**
   * Equivalent to: `ip -4 addr flush dev $name`: deletes the link's IPv4 addresses one request
   * at a time, until the kernel says it has none (EADDRNOTAVAIL). Resolves with how many there
   * were. `name` is the link's, for the error message only. Throws a KernelError when the link
   * is absent (ENODEV, isKernelNotFound).
   */
  async addrFlush(index: number, { name }: { readonly name?: string } = {}): Promise<number> {
    for (let removed = 0; ; removed++) {
      try {
        await this.send(`removing the IPv4 addresses of link ${linkLabel(index, name)}`, addrDelFirstRequest(index));
      } catch (error) {
        if (error instanceof KernelError && error.errno === "EADDRNOTAVAIL") return removed;
        throw error;
      }
    }
  }

  /**
   * Equivalent to: `ip addr replace $address/$prefixLength dev $name` (idempotent). `name` is
   * the link's, for the error message only. A malformed address is a NetworkError, and sends nothing.
   */
  async addrReplace(index: number, address: string, prefixLength: number, { name }: { readonly name?: string } = {}): Promise<void> {
    const request = addrReplaceRequest(index, address, prefixLength);
    await this.send(`adding address ${address}/${prefixLength} to link ${linkLabel(index, name)}`, request);
  }

  /**
   * A dump on its own socket, after the one before it, decoded by the codec rather than by
   * the netlink package: that would decode every attribute of every message into objects
   * (link stats, VF info, ...) where we read four.
   */
  private dump<T>(operation: string, dump: Dump<T>): Promise<T[]> {
    const run = async () => {
      const parsed: T[] = [];
      for (const message of await this.send(operation, dump.request, this.dumps)) {
        if (message.type !== dump.answer) continue;
        const item = dump.parse(message.data);
        if (item !== undefined) parsed.push(item);
      }
      return parsed;
    };
    const result = this.dumping.then(run, run);
    this.dumping = result.catch(() => undefined);
    return result;
  }

  /** Equivalent to: `ip -d -j link show`. */
  linkList(): Promise<LinkInfo[]> {
    return this.dump("listing links", linkDump());
  }

  /** Equivalent to: `ip -4 -j addr show`. */
  addrList(): Promise<AddressInfo[]> {
    return this.dump("listing addresses", addrDump());
  }

  /** Equivalent to: `ip -4 -j route show table main`. */
  routeList(): Promise<RouteInfo[]> {
    return this.dump("listing routes", routeDump());
  }
}
