/**
 * The iptables and `ip` texts shared by the baseline and the profile: rik-network's own
 * rule texts (imported, not copied), rendered as one `iptables-restore --noflush` batch or
 * one `ip -batch` script to fill a namespace quickly. Pure.
 */
import {
  instanceRules,
  nodeChains,
  nodeJumpRules,
  nodePoolRules,
  renderRestore,
  type Rule,
} from "../src/network/iptables-rules.js";
import type { BenchInstance } from "./instances.js";

/** The 3 rules of one exposed instance, exactly as rik-network writes them: DNAT, FORWARD in, FORWARD egress. */
export function rulesOf(instance: BenchInstance): Rule[] {
  return instanceRules({
    instanceId: instance.id,
    tapName: instance.tapName,
    guestIp: instance.guestIp,
    ports: [{ protocol: "tcp", hostPort: instance.hostPort, guestPort: instance.guestPort }],
  });
}

/** rik-network's node setup on an empty namespace: chains RIKLET and RIKLET-FORWARD, jumps, pool rules. */
export function nodeSetupRestore(pool: string): string {
  return renderRestore({ createChains: nodeChains, insert: nodeJumpRules(), append: nodePoolRules(pool) });
}

/** One `iptables-restore --noflush` batch appending every rule of `instances`. */
export function fillRestore(instances: readonly BenchInstance[]): string {
  return renderRestore({ append: instances.flatMap(rulesOf) });
}

/** One `ip -batch -` script creating the TAPs of `instances` with their host address, up. */
export function fillTapBatch(instances: readonly BenchInstance[]): string {
  return instances
    .map((i) => `tuntap add dev ${i.tapName} mode tap\naddr add ${i.hostIp}/30 dev ${i.tapName}\nlink set dev ${i.tapName} up\n`)
    .join("");
}
