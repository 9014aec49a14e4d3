/**
 * What a refused request must leave byte-identical on the node: the raw JSON of `ip -j link`
 * and `ip -j addr`, and the whole ruleset, timestamps of iptables-save aside. The service's
 * spare TAPs are left out: it makes them in the background, whatever the requests.
 */
import { isSpareTapName } from "../../src/network/spare-taps.js";
import { delay, type Topology } from "./netns.js";

export interface HostState {
  readonly links: string;
  readonly addrs: string;
  readonly rules: string;
}

/** How long the kernel's own duplicate address detection may take to settle (1 s by default). */
const DAD_SETTLE_MS = 5000;

/**
 * Read once the kernel's duplicate address detection on the TAPs' IPv6 link-local addresses
 * has settled: their "tentative" flag clears by itself about a second after a TAP comes up,
 * which is no change of ours.
 */
export async function hostState(topology: Topology): Promise<HostState> {
  for (const started = Date.now(); ; await delay(100)) {
    const [links, addrs, rules] = await Promise.all([
      topology.execNode("ip", ["-j", "link"]),
      topology.execNode("ip", ["-j", "addr"]),
      topology.execNode("iptables-save"),
    ]);
    const state = {
      links: withoutSpares(String(links.stdout)),
      addrs: withoutSpares(String(addrs.stdout)),
      rules: String(rules.stdout).replace(/^# (Generated|Completed) .*$/gm, ""),
    };
    if (!state.addrs.includes('"tentative":true') || Date.now() - started > DAD_SETTLE_MS) return state;
  }
}

/** `ip -j link` or `ip -j addr` output without the entries of spare TAPs, re-serialized. */
function withoutSpares(json: string): string {
  return JSON.stringify((JSON.parse(json) as { ifname: string }[]).filter((entry) => !isSpareTapName(entry.ifname)));
}
