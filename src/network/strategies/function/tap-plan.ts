import { isTapName } from "../../model/instance-naming.js";
import type { AddressInfo, LinkInfo } from "../../kernel/rtnetlink/rtnetlink.js";
import type { DesiredTap } from "./desired-tap.js";
import { isDoomedTapName } from "./retired-taps.js";

export interface ObservedLinks {
  readonly links: readonly LinkInfo[];
  readonly addresses: readonly AddressInfo[];
}

export interface TapRepair {
  readonly tap: DesiredTap;
  readonly index: number;
  readonly addAddress: boolean;
  readonly setUp: boolean;
}

export interface TapPlan {
  readonly createTaps: readonly DesiredTap[];
  readonly repairTaps: readonly TapRepair[];
  readonly removeAddresses: readonly AddressInfo[];
  readonly deleteTaps: readonly string[];
  /** Retired TAPs (doomed names) that no deletion of this process is under way for: a crash's leftovers. */
  readonly deleteDoomedTaps: readonly string[];
}

/**
 * What to do so that the kernel holds exactly these TAPs: missing ones are made, ones that
 * lost their address or went down repaired; TAPs with our naming that no instance owns, and
 * stray addresses on ours, are removed, and so are retired TAPs (doomed names) but those
 * `settling` says are being deleted or adopted already. Pure, so that every decision
 * reconcile takes can be tested without a kernel.
 */
export function planTaps(taps: readonly DesiredTap[], observed: ObservedLinks, settling: (name: string) => boolean = () => false): TapPlan {
  const linkByName = new Map(observed.links.map((link) => [link.name, link]));
  const wantedTaps = new Map(taps.map((tap) => [tap.tapName, tap]));
  const addressesByIndex = new Map<number, AddressInfo[]>();
  for (const address of observed.addresses) {
    addressesByIndex.set(address.index, [...(addressesByIndex.get(address.index) ?? []), address]);
  }

  const createTaps: DesiredTap[] = [];
  const repairTaps: TapRepair[] = [];
  const removeAddresses: AddressInfo[] = [];
  for (const tap of taps) {
    const link = linkByName.get(tap.tapName);
    if (link === undefined || link.kind !== "tun") {
      createTaps.push(tap);
      continue;
    }
    const addresses = addressesByIndex.get(link.index) ?? [];
    const addAddress = !addresses.some((a) => a.address === tap.hostIp && a.prefixLength === tap.prefixLength);
    const setUp = !link.up || link.mtu !== tap.mtu;
    if (addAddress || setUp) repairTaps.push({ tap, index: link.index, addAddress, setUp });
    removeAddresses.push(...addresses.filter((a) => a.address !== tap.hostIp || a.prefixLength !== tap.prefixLength));
  }
  const deleteTaps = observed.links
    .filter((link) => isTapName(link.name) && link.kind === "tun" && !wantedTaps.has(link.name))
    .map((link) => link.name);
  const deleteDoomedTaps = observed.links.filter((link) => isDoomedTapName(link.name) && link.kind === "tun" && !settling(link.name)).map((link) => link.name);

  return { createTaps, repairTaps, removeAddresses, deleteTaps, deleteDoomedTaps };
}

/** The plan as counts per action, for the one log line and the metrics of a reconcile. */
export function tapActions(plan: TapPlan): Record<string, number> {
  const counts: Record<string, number> = {
    tap_created: plan.createTaps.length,
    tap_repaired: plan.repairTaps.length,
    address_removed: plan.removeAddresses.length,
    tap_removed: plan.deleteTaps.length,
    doomed_tap_removed: plan.deleteDoomedTaps.length,
  };
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
}
