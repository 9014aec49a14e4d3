/**
 * What a refused request must leave byte-identical on the node: the raw JSON of `ip -j link`
 * and the whole ruleset (as bad-input.test.ts compares it), timestamps of iptables-save aside.
 */
import type { Topology } from "./netns.js";

export interface HostState {
  readonly links: string;
  readonly rules: string;
}

export async function hostState(topology: Topology): Promise<HostState> {
  const [links, rules] = await Promise.all([topology.execNode("ip", ["-j", "link"]), topology.execNode("iptables-save")]);
  return { links: String(links.stdout), rules: String(rules.stdout).replace(/^# (Generated|Completed) .*$/gm, "") };
}
