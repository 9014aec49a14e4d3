import type { Logger } from "../../../logger.js";
import type { Rtnetlink } from "../../kernel/rtnetlink/rtnetlink.js";
import { sysctlSet } from "../../kernel/sysctl.js";
import { hasTapIpv6Settings, TAP_IPV6_SYSCTLS, type TapCreator } from "../../kernel/tap-creator.js";
import type { TapDeleter } from "../../kernel/tap-deleter.js";
import type { StartDumps } from "../../node/node-setup.js";
import { faultPoint } from "../../support/fault-point.js";
import { isSpareTapName, type SpareTaps } from "./spare-taps.js";
import type { DesiredTap } from "./desired-tap.js";
import { RetiredTaps } from "./retired-taps.js";
import { planTaps, tapActions } from "./tap-plan.js";

export interface FunctionTapsOptions {
  /** Whether 127.0.0.1:<port> on the node reaches the guests (route_localnet on each TAP). */
  readonly localhost: boolean;
  readonly rtnetlink: Rtnetlink;
  readonly taps: TapCreator;
  readonly spares: SpareTaps;
  readonly tapDeleter: TapDeleter;
  readonly logger: Logger;
}

/**
 * Equivalent to: `sysctl -w net.ipv6.conf.$tap.disable_ipv6=1 net.ipv6.conf.$tap.accept_ra=0
 * net.ipv6.conf.$tap.addr_gen_mode=1`; disabling IPv6 also removes the addresses the link got
 * meanwhile. Returns whether anything had to change.
 */
function turnIpv6Off(tapName: string): boolean {
  let changed = false;
  for (const [key, value] of Object.entries(TAP_IPV6_SYSCTLS)) changed = sysctlSet(`net.ipv6.conf.${tapName}.${key}`, value) || changed;
  return changed;
}

/**
 * The Function strategy's links: the persistent TAPs VMMs attach to, made (or taken from the
 * spares), retired or deleted, and reconciled. It owns the devices named like instance TAPs
 * (see instance-naming.ts), the spares and the retired TAPs (doomed names); no other link is
 * ever its orphan.
 */
export class FunctionTaps {
  private readonly options: FunctionTapsOptions;
  private readonly retired: RetiredTaps;

  constructor(options: FunctionTapsOptions) {
    this.options = options;
    const { rtnetlink, spares, tapDeleter, logger } = options;
    this.retired = new RetiredTaps({ rtnetlink, spares, deleter: tapDeleter, ownership: options.taps.ownership, logger });
  }

  /**
   * Equivalent to: `ip tuntap add dev $tap mode tap vnet_hdr && ip addr add $host/30 dev $tap
   * && ip link set $tap mtu $mtu up && sysctl -w net.ipv4.conf.$tap.route_localnet=1`; or,
   * when a spare TAP is ready, renaming and configuring that one (SpareTaps.take).
   */
  async add(tap: DesiredTap): Promise<void> {
    const { rtnetlink } = this.options;
    if (await this.options.spares.take(tap, this.options.localhost)) {
      faultPoint("create: TAP added");
      return;
    }
    const { detached } = await this.options.taps.add(tap.tapName);
    faultPoint("create: TAP added");
    // Independent of each other: our descriptor detaches (in TapCreator's worker), the link
    // comes up with its route_localnet, and its index is looked up for the address, all at once.
    const addressed = rtnetlink.linkIndex(tap.tapName).then(async (index) => {
      await rtnetlink.addrReplace(index, tap.hostIp, tap.prefixLength, { name: tap.tapName });
      faultPoint("create: address added");
    });
    await Promise.all([detached, addressed, rtnetlink.linkSetUp(tap.tapName, { mtu: tap.mtu, routeLocalnet: this.options.localhost })]);
  }

  /** Equivalent to: `ip link del dev $tap`, batched with the deletions that arrive meanwhile. */
  delete(tapName: string): Promise<void> {
    return this.options.tapDeleter.delete(tapName);
  }

  /**
   * What a DESTROY does to the TAP: resolves once it is unusable and no longer bears the
   * instance's name; it is deleted, or becomes a spare, in the background (RetiredTaps.retire).
   */
  retire(tap: DesiredTap, context: { readonly instanceId: string }): Promise<void> {
    return this.retired.retire(tap, context);
  }

  /** Waits for the retired TAPs' background work, so that a stopped service leaves none of them. */
  close(): Promise<void> {
    return this.retired.close();
  }

  /**
   * Makes the node hold exactly the `desired` TAPs, as the dumps (those setup read, at start)
   * show them: missing ones made, broken ones repaired (address, up, MTU, route_localnet,
   * IPv6, owner), ours that no instance wants removed, retired ones whose deletion was cut
   * short (by a crash) deleted. `isInstanceTap` says which TAP names
   * belong to an instance, being destroyed ones included. Returns the actions taken.
   */
  async reconcile(desired: readonly DesiredTap[], isInstanceTap: (name: string) => boolean, start: StartDumps | undefined): Promise<Record<string, number>> {
    const { rtnetlink } = this.options;
    const links = start?.links ?? (await rtnetlink.linkList());
    const addresses = start?.addresses ?? (await rtnetlink.addrList());
    const plan = planTaps(desired, { links, addresses }, (name) => this.retired.isSettling(name));
    for (const tap of plan.createTaps) await this.add(tap);
    for (const { tap, index, addAddress, setUp } of plan.repairTaps) {
      if (addAddress) await rtnetlink.addrReplace(index, tap.hostIp, tap.prefixLength, { name: tap.tapName });
      if (setUp) await rtnetlink.linkSetUp(index, { mtu: tap.mtu, name: tap.tapName });
    }
    // From the link dump: new TAPs got these from add.
    const linkByName = new Map(links.map((link) => [link.name, link]));
    const { owner, group } = this.options.taps.ownership;
    let localnetRepaired = 0;
    let ipv6Repaired = 0;
    let ownerRepaired = 0;
    for (const { tapName } of desired) {
      const link = linkByName.get(tapName);
      if (link?.kind !== "tun") continue;
      if (link.routeLocalnet !== this.options.localhost && this.setRouteLocalnet(link.name)) localnetRepaired++;
      if ((owner !== undefined && link.tunOwner !== owner) || (group !== undefined && link.tunGroup !== group)) {
        if (await this.reattach(link.name)) ownerRepaired++;
      }
    }
    // Spares too: one whose IPv6 was turned back on would become an instance's TAP with it.
    for (const link of links) {
      const ours = link.kind === "tun" && (isSpareTapName(link.name) || isInstanceTap(link.name));
      if (ours && link.ipv6 !== undefined && !hasTapIpv6Settings(link.ipv6) && turnIpv6Off(link.name)) ipv6Repaired++;
    }
    const nameByIndex = new Map(links.map((link) => [link.index, link.name]));
    for (const address of plan.removeAddresses) {
      await rtnetlink.addrDel(address.index, address.address, address.prefixLength, { name: nameByIndex.get(address.index) });
    }
    await Promise.all([...plan.deleteTaps, ...plan.deleteDoomedTaps].map((tapName) => this.delete(tapName)));
    const repaired = { route_localnet_repaired: localnetRepaired, ipv6_repaired: ipv6Repaired, tap_owner_repaired: ownerRepaired };
    return { ...tapActions(plan), ...Object.fromEntries(Object.entries(repaired).filter(([, count]) => count > 0)) };
  }

  /**
   * A connection to 127.0.0.1 DNATed to a guest keeps its loopback source until POSTROUTING
   * masquerades it; without route_localnet the route lookup drops it as a martian first.
   * Returns whether the value had to change.
   */
  private setRouteLocalnet(tapName: string): boolean {
    return sysctlSet(`net.ipv4.conf.${tapName}.route_localnet`, this.options.localhost ? "1" : "0");
  }

  /**
   * Gives an existing TAP the node's owner and group (TapCreator re-attaches to it). Refused
   * while a VMM holds the TAP: logged, and the next reconcile tries again. Returns whether it
   * was done.
   */
  private async reattach(tapName: string): Promise<boolean> {
    try {
      const { detached } = await this.options.taps.add(tapName);
      await detached;
      return true;
    } catch (error) {
      this.options.logger.warn("cannot give a TAP the node's --tap-owner/--tap-group (a VMM may hold it); the next reconcile tries again", {
        tap: tapName,
        error: (error as Error).message,
      });
      return false;
    }
  }
}
