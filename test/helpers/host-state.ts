/**
 * What a refused request must leave byte-identical on the node: the raw JSON of `ip -j link`
 * and `ip -j addr`, and the whole ruleset, timestamps of iptables-save aside. The service's
 * spare TAPs are left out: it makes them in the background, whatever the requests.
 */
import { isSpareTapName } from "../../src/network/spare-taps.js";
import type { Topology } from "./netns.js";

export interface HostState {
  readonly links: string;
  readonly addrs: string;
  readonly rules: string;
}

/** Read at once: the TAPs have no IPv6, so no duplicate address detection changes them after the fact. */
export async function hostState(topology: Topology): Promise<HostState> {
  const [links, addrs, rules] = await Promise.all([
    topology.execNode("ip", ["-j", "link"]),
    topology.execNode("ip", ["-j", "addr"]),
    topology.execNode("iptables-save"),
  ]);
  return {
    links: withoutSpares(String(links.stdout)),
    addrs: withoutSpares(String(addrs.stdout)),
    rules: String(rules.stdout).replace(/^# (Generated|Completed) .*$/gm, ""),
  };
}

/** `ip -j link` or `ip -j addr` output without the entries of spare TAPs, re-serialized. */
function withoutSpares(json: string): string {
  return JSON.stringify((JSON.parse(json) as { ifname: string }[]).filter((entry) => !isSpareTapName(entry.ifname)));
}
