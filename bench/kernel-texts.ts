/**
 * The iptables and `ip` texts shared by the baseline and the profile: rik-network's own
 * rule texts (imported, not copied), rendered as one `iptables-restore --noflush` batch or
 * one `ip -batch` script to fill a namespace quickly. Pure.
 */
import { DEFAULT_EGRESS_DENY } from "../src/network/firewall/firewall.js";
import {
  instanceComment,
  instanceRules,
  NAT_CHAIN,
  nodeChains,
  nodeChainRules,
  nodeJumpRules,
  renderRestore,
  type Rule,
} from "../src/network/firewall/iptables/iptables-rules.js";
import type { BenchInstance } from "./instances.js";

/** riklet's filter chain, where it keeps each instance's FORWARD ACCEPTs. */
const RIKLET_FORWARD_CHAIN = "RIKLET-INSTANCES";

/** The rules of one exposed instance, exactly as rik-network writes them: its DNAT (the filter rules are node-wide). */
export function rulesOf(instance: BenchInstance): Rule[] {
  return instanceRules({
    instanceId: instance.id,
    guestIp: instance.guestIp,
    ports: [{ protocol: "tcp", hostPort: instance.hostPort, guestPort: instance.guestPort }],
  });
}

/**
 * The 3 rules riklet writes for one exposed instance, with rik-network's matches and comment:
 * the DNAT, an ACCEPT of DNATed connections to the guest port, and an ACCEPT of the guest's
 * egress. riklet keeps every rule of a table in one chain (RIKLET, RIKLET-INSTANCES), so its
 * `-C` and `-D` scan all of them.
 */
export function rikletRulesOf(instance: BenchInstance): Rule[] {
  const tag = `-m comment --comment "${instanceComment(instance.id)}"`;
  const { guestIp, guestPort, tapName, pool } = instance;
  return [
    { ...rulesOf(instance)[0]!, chain: NAT_CHAIN },
    { table: "filter", chain: RIKLET_FORWARD_CHAIN, spec: `-d ${guestIp}/32 -o ${tapName} -p tcp -m tcp --dport ${guestPort} -m conntrack --ctstate DNAT ${tag} -j ACCEPT` },
    { table: "filter", chain: RIKLET_FORWARD_CHAIN, spec: `-s ${guestIp}/32 ! -d ${pool} -i ${tapName} ${tag} -j ACCEPT` },
  ];
}

/**
 * The node as riklet sets it up: its two chains, the jumps into them and the MASQUERADE, and
 * none of rik-network's shards, so that riklet's `iptables -L` lists what riklet's would.
 */
export function rikletSetupRestore(pool: string): string {
  const comment = '-m comment --comment "rik-network"';
  return renderRestore({
    createChains: [
      { table: "nat", name: NAT_CHAIN },
      { table: "filter", name: RIKLET_FORWARD_CHAIN },
    ],
    insert: [
      { table: "nat", chain: "PREROUTING", spec: `-m addrtype --dst-type LOCAL ${comment} -j ${NAT_CHAIN}` },
      { table: "nat", chain: "OUTPUT", spec: `-m addrtype --dst-type LOCAL ${comment} -j ${NAT_CHAIN}` },
      { table: "filter", chain: "FORWARD", spec: `${comment} -j ${RIKLET_FORWARD_CHAIN}` },
    ],
    append: [{ table: "nat", chain: "POSTROUTING", spec: `-s ${pool} ! -d ${pool} ${comment} -j MASQUERADE` }],
  });
}

/** rik-network's node setup on an empty namespace, with its defaults: chains, jumps, node-wide rules. */
export function nodeSetupRestore(pool: string): string {
  const options = { pool, localhost: true, egressDeny: DEFAULT_EGRESS_DENY };
  return renderRestore({ createChains: nodeChains(), insert: nodeJumpRules(options), append: nodeChainRules(options) });
}

/** One `iptables-restore --noflush` batch appending every rule of `instances`, as `rules` lays them out. */
export function fillRestore(instances: readonly BenchInstance[], rules: (instance: BenchInstance) => Rule[] = rulesOf): string {
  return renderRestore({ append: instances.flatMap(rules) });
}

/** One `ip -batch -` script creating the TAPs of `instances` with their host address, up. */
export function fillTapBatch(instances: readonly BenchInstance[]): string {
  return instances
    .map((i) => `tuntap add dev ${i.tapName} mode tap\naddr add ${i.hostIp}/30 dev ${i.tapName}\nlink set dev ${i.tapName} up\n`)
    .join("");
}
