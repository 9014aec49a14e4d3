import type { Logger } from "../../logger.js";
import type { Conntrack } from "../kernel/conntrack.js";
import type { AddressInfo, LinkInfo, Rtnetlink } from "../kernel/rtnetlink/rtnetlink.js";
import { sysctlSet } from "../kernel/sysctl.js";
import { AddressPool } from "../model/address-pool.js";
import type { Ipv4Cidr } from "../model/ipv4-cidr.js";
import { NetworkError } from "../model/network-error.js";
import { findPoolConflicts } from "./pool-conflicts.js";

/** Used when the node has no default route to take the MTU from. */
const FALLBACK_MTU = 1500;

export interface NodeSetupOptions {
  readonly pool: Ipv4Cidr;
  /** MTU of every guest link; "auto" takes the MTU of the default route's interface at setup. */
  readonly mtu: number | "auto";
  readonly rtnetlink: Rtnetlink;
  readonly conntrack: Conntrack;
  readonly logger: Logger;
}

/** The link and address dumps setup read, for the reconcile that follows it at start. */
export interface StartDumps {
  readonly links: LinkInfo[];
  readonly addresses: AddressInfo[];
}

/**
 * What every strategy shares on the node: the address pool its instances' /30s come from,
 * the MTU of their links, and the setup before anything is served (the pool checked against
 * the host, forwarding on).
 */
export class NodeSetup {
  readonly pool: AddressPool;
  private readonly options: NodeSetupOptions;
  private linkMtu: number;
  private startDumps: StartDumps | undefined;

  constructor(options: NodeSetupOptions) {
    this.options = options;
    this.pool = new AddressPool(options.pool);
    this.linkMtu = options.mtu === "auto" ? FALLBACK_MTU : options.mtu;
  }

  /** The MTU of every guest link, returned to the VMM: --mtu, or what setup took from the default route. */
  get mtu(): number {
    return this.linkMtu;
  }

  /**
   * Refuses a pool that overlaps the host's addresses or routes (those of links a strategy
   * owns, `ownsLink`, are ours: a restart finds them carrying pool addresses), checks that conntrack can be
   * run, turns forwarding on and settles the MTU.
   *
   * Equivalent to: `ip -j link; ip -j addr; ip -j route` (compared with the pool), then
   * `conntrack --version && sysctl -w net.ipv4.ip_forward=1`
   */
  async setup(ownsLink: (name: string) => boolean): Promise<void> {
    const { rtnetlink, pool, logger } = this.options;
    const conntrack = this.options.conntrack.available();
    conntrack.catch(() => undefined); // awaited below, once the dumps are read
    const links = await rtnetlink.linkList();
    const addresses = await rtnetlink.addrList();
    const routes = await rtnetlink.routeList();
    const conflicts = findPoolConflicts(pool, { links, addresses, routes }, ownsLink);
    if (conflicts.length > 0) {
      throw new NetworkError("failed-precondition", `address pool ${pool.toString()} overlaps the host's ${conflicts.join(", ")}; choose another --pool`);
    }
    await conntrack;
    sysctlSet("net.ipv4.ip_forward", "1");
    // The reconcile at start comes next, with nothing served in between: nothing of ours can
    // change links or addresses before it, so it takes these dumps rather than repeating them.
    this.startDumps = { links, addresses };
    if (this.options.mtu === "auto") {
      const route = routes.find((r) => r.prefixLength === 0 && r.index !== undefined);
      const link = links.find((l) => l.index === route?.index);
      this.linkMtu = link?.mtu ?? FALLBACK_MTU;
      if (link === undefined) {
        logger.info(`no default route to take the TAP MTU from; using ${FALLBACK_MTU} (set --mtu to choose)`);
      } else {
        logger.info("TAP MTU taken from the default route's interface", { interface: link.name, mtu: link.mtu });
      }
    }
  }

  /** The dumps setup read, once: for the reconcile right after it, which hands them to every strategy. */
  takeStartDumps(): StartDumps | undefined {
    const dumps = this.startDumps;
    this.startDumps = undefined;
    return dumps;
  }
}
