/**
 * What a refused request must leave byte-identical on the node: the raw JSON of `ip -j link`
 * and `ip -j addr`, and the whole ruleset of both firewall backends, iptables (IPv4 and IPv6,
 * timestamps of iptables-save aside) and `nft list ruleset` (counters aside). The service's
 * spare TAPs are left out: it makes them in the background, whatever the requests. It is read
 * once the retired TAPs of destroyed instances, which the service deletes in the background,
 * are gone (one left is in the state, a difference).
 */
import { isSpareTapName } from "../../src/network/strategies/function/spare-taps.js";
import { NFT, normalizeNftRuleset, retiredTapsGone } from "./kernel-state.js";
import type { Topology } from "./netns.js";

export interface HostState {
  readonly links: string;
  readonly addrs: string;
  readonly rules: string;
  readonly rules6: string;
  readonly nft: string;
}

/**
 * Read at once. What the kernel changes by itself is left out: "tentative", on the IPv6
 * link-local addresses of the topology's own links (the TAPs have no IPv6), which duplicate
 * address detection clears about a second after a link comes up, and each link's carrier.
 */
export async function hostState(topology: Topology): Promise<HostState> {
  await retiredTapsGone(topology.node);
  const [links, addrs, rules, rules6, nft] = await Promise.all([
    topology.execNode("ip", ["-j", "link"]),
    topology.execNode("ip", ["-j", "addr"]),
    topology.execNode("iptables-save"),
    topology.execNode("ip6tables-save"),
    topology.execNode(NFT, ["list", "ruleset"]),
  ]);
  const untimed = (save: string) => save.replace(/^# (Generated|Completed) .*$/gm, "");
  return {
    links: withoutSpares(String(links.stdout)),
    addrs: withoutSpares(String(addrs.stdout)).replaceAll('"tentative":true,', ""),
    rules: untimed(String(rules.stdout)),
    rules6: untimed(String(rules6.stdout)),
    nft: normalizeNftRuleset(String(nft.stdout)),
  };
}

/** `ip -j link` or `ip -j addr` output without the entries of spare TAPs, re-serialized. */
function withoutSpares(json: string): string {
  return JSON.stringify((JSON.parse(json) as { ifname: string }[]).filter((entry) => !isSpareTapName(entry.ifname)).map(withoutCarrier));
}

/**
 * A link without its carrier and operational state: the kernel's linkwatch sets them after
 * the fact (a TAP loses its carrier once the descriptor that made it is closed), which is no
 * change of ours.
 */
function withoutCarrier(entry: { ifname: string; flags?: string[]; operstate?: string }): object {
  const { operstate: _operstate, ...rest } = entry;
  return { ...rest, ...(entry.flags === undefined ? {} : { flags: entry.flags.filter((flag) => flag !== "NO-CARRIER" && flag !== "LOWER_UP") }) };
}
