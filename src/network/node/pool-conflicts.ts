import { Ipv4Cidr, parseIpv4 } from "../model/ipv4-cidr.js";
import type { AddressInfo, LinkInfo, RouteInfo } from "../kernel/rtnetlink/rtnetlink.js";

export interface HostNetworkState {
  readonly links: readonly LinkInfo[];
  readonly addresses: readonly AddressInfo[];
  readonly routes: readonly RouteInfo[];
}

/**
 * Host addresses and non-default routes that overlap the pool, ignoring the links `isOurs`
 * says a strategy made (a restart finds them carrying pool addresses). Each entry is a
 * human-readable reason.
 */
export function findPoolConflicts(pool: Ipv4Cidr, host: HostNetworkState, isOurs: (name: string) => boolean): string[] {
  const ours = new Set(host.links.filter((l) => isOurs(l.name)).map((l) => l.index));
  const nameOf = (index: number | undefined) => host.links.find((l) => l.index === index)?.name ?? `#${index}`;
  const overlaps = (address: string, prefixLength: number) => {
    const ip = parseIpv4(address);
    return ip !== undefined && new Ipv4Cidr(ip, prefixLength).overlaps(pool);
  };
  const conflicts: string[] = [];
  for (const a of host.addresses) {
    if (!ours.has(a.index) && overlaps(a.address, a.prefixLength)) {
      conflicts.push(`address ${a.address}/${a.prefixLength} on ${nameOf(a.index)}`);
    }
  }
  for (const r of host.routes) {
    if (r.prefixLength > 0 && !ours.has(r.index ?? -1) && overlaps(r.destination, r.prefixLength)) {
      conflicts.push(`route ${r.destination}/${r.prefixLength} via ${nameOf(r.index)}`);
    }
  }
  return conflicts;
}
