/**
 * What one reconcile plans, the Function strategy's TAPs and the iptables firewall's rules
 * together, as the manager's reconcile runs them both.
 */
import test from "ava";
import { chainKey, instanceRules, nodeChainRules, nodeChains, nodeJumpRules, parseIptablesSave, type Rule, type SavedRules } from "../firewall/iptables/iptables-rules.js";
import { planRules, ruleActions, type DesiredRules } from "../firewall/iptables/rule-plan.js";
import type { AddressInfo, LinkInfo } from "../kernel/rtnetlink/rtnetlink.js";
import { planTaps, tapActions, type DesiredTap, type ObservedLinks, type TapPlan } from "../strategies/function/tap-plan.js";

type DesiredState = DesiredRules & { readonly taps: readonly DesiredTap[] };
type ReconcilePlan = TapPlan & { readonly rules: ReturnType<typeof planRules> };

function planReconcile(desired: DesiredState, observed: ObservedLinks & { readonly saved: SavedRules }): ReconcilePlan {
  return { ...planTaps(desired.taps, observed), rules: planRules(desired, observed.saved) };
}

function planActions(plan: ReconcilePlan): Record<string, number> {
  return { ...tapActions(plan), ...ruleActions(plan.rules) };
}

const POOL = "10.220.0.0/24";
const tapA = { tapName: "rikaaaaaaaaaaaa", hostIp: "10.220.0.1", prefixLength: 30, mtu: 1500 };
const tapB = { tapName: "rikbbbbbbbbbbbb", hostIp: "10.220.0.5", prefixLength: 30, mtu: 1500 };
const rulesA = instanceRules({ instanceId: "a", guestIp: "10.220.0.2", ports: [{ protocol: "tcp", hostPort: 8080, guestPort: 80 }] });
const rulesB = instanceRules({ instanceId: "b", guestIp: "10.220.0.6", ports: [{ protocol: "udp", hostPort: 5353, guestPort: 53 }] });
const nodeOptions = { pool: POOL, localhost: true, egressDeny: ["169.254.0.0/16"] };
const fixed = nodeChainRules(nodeOptions);

const desired: DesiredState = {
  taps: [tapA, tapB],
  chains: nodeChains(),
  jumps: nodeJumpRules(nodeOptions),
  fixed,
  rules: [...rulesA, ...rulesB],
};

function save(rules: readonly Rule[], chains = nodeChains().map(chainKey)): string {
  const lines: string[] = [];
  for (const table of ["raw", "nat", "filter"]) {
    lines.push(`*${table}`);
    for (const chain of chains.filter((c) => c.startsWith(table))) lines.push(`:${chain.split(" ")[1]} - [0:0]`);
    for (const rule of rules.filter((r) => r.table === table)) lines.push(`-A ${rule.chain} ${rule.spec.replaceAll('"', "")}`);
    lines.push("COMMIT");
  }
  return lines.join("\n");
}

const link = (index: number, name: string, extra: Partial<LinkInfo> = {}): LinkInfo => ({ index, name, kind: "tun", up: true, mtu: 1500, routeLocalnet: true, ipv6: undefined, ...extra });
const address = (index: number, a: string): AddressInfo => ({ index, address: a, prefixLength: 30 });
const healthy = {
  links: [link(1, "lo", { kind: undefined }), link(2, tapA.tapName), link(3, tapB.tapName)],
  addresses: [address(2, "10.220.0.1"), address(3, "10.220.0.5")],
  saved: parseIptablesSave(save([...desired.jumps, ...fixed, ...desired.rules])),
};

test("a kernel that matches needs nothing", (t) => {
  const plan = planReconcile(desired, healthy);
  t.deepEqual(planActions(plan), {});
});

test("an empty node gets chains, jumps inserted, rules appended and TAPs created", (t) => {
  const plan = planReconcile(desired, { links: [], addresses: [], saved: parseIptablesSave(save([], [])) });
  t.deepEqual(plan.createTaps, [tapA, tapB]);
  t.deepEqual(plan.rules.createChains, nodeChains());
  t.deepEqual(plan.rules.insert, nodeJumpRules(nodeOptions));
  t.deepEqual(plan.rules.flushChains, []);
  t.deepEqual(plan.rules.append, [...fixed, ...rulesA, ...rulesB]);
  t.deepEqual(planActions(plan), {
    tap_created: 2,
    chain_created: nodeChains().length,
    rule_added: nodeJumpRules(nodeOptions).length + fixed.length + rulesA.length + rulesB.length,
  });
});

test("a flushed DNAT shard gets its DNAT back, and nothing else", (t) => {
  const flushed = [...desired.jumps, ...fixed, ...desired.rules].filter((r) => r.chain !== "RIKLET-P15");
  const plan = planReconcile(desired, { ...healthy, saved: parseIptablesSave(save(flushed)) });
  t.deepEqual(plan.rules.append, rulesA.filter((r) => r.chain === "RIKLET-P15"));
  t.deepEqual(planActions(plan), { rule_added: 1 });
});

test("a flushed RIKLET gets its jumps to the shards back, in order", (t) => {
  const flushed = [...desired.jumps, ...fixed, ...desired.rules].filter((r) => r.chain !== "RIKLET");
  const plan = planReconcile(desired, { ...healthy, saved: parseIptablesSave(save(flushed)) });
  t.deepEqual(plan.rules.flushChains, [{ table: "nat", name: "RIKLET" }]);
  t.deepEqual(plan.rules.append, fixed.filter((r) => r.chain === "RIKLET"));
});

test("chains named like ours that are not wanted any more are removed whole, after what jumps to them", (t) => {
  const chains = [...nodeChains().map(chainKey), "filter RIKLET-INSTANCES-G7", "nat RIKLET-OLD"];
  const inStale: Rule = { table: "filter", chain: "RIKLET-INSTANCES-G7", spec: "-s 10.9.9.9/32 -j ACCEPT" };
  const foreignChain = "filter OTHER-TOOL";
  const plan = planReconcile(desired, {
    ...healthy,
    saved: parseIptablesSave(save([...desired.jumps, ...fixed, ...desired.rules, inStale], [...chains, foreignChain])),
  });
  t.deepEqual(plan.rules.deleteChains, [
    { table: "nat", name: "RIKLET-OLD" },
    { table: "filter", name: "RIKLET-INSTANCES-G7" },
  ]);
  t.deepEqual(plan.rules.delete, [], "the stale chain's rules go with its flush");
  t.deepEqual(planActions(plan), { chain_removed: 2 });
});

test("a deleted TAP is re-created; a TAP that lost its address or went down is repaired", (t) => {
  const plan = planReconcile(desired, {
    ...healthy,
    links: [link(3, tapB.tapName, { up: false })],
    addresses: [],
  });
  t.deepEqual(plan.createTaps, [tapA]);
  t.deepEqual(plan.repairTaps, [{ tap: tapB, index: 3, addAddress: true, setUp: true }]);
});

test("what no instance owns is removed: our TAPs, stray addresses on them, our rules and duplicates", (t) => {
  const strayRule: Rule = { table: "nat", chain: "RIKLET-P19", spec: '-p tcp -m tcp --dport 9999 -m comment --comment "rik:gone" -j DNAT --to-destination 10.220.0.10:80' };
  const taggedElsewhere: Rule = { table: "filter", chain: "FORWARD", spec: '-i rikgggggggggggg -m comment --comment "rik:gone" -j ACCEPT' };
  const foreign: Rule = { table: "filter", chain: "FORWARD", spec: "-i eth9 -j DROP" };
  const duplicate = rulesA[0]!;
  const plan = planReconcile(desired, {
    links: [...healthy.links, link(4, "rikgggggggggggg"), link(5, "rikgggggggggggg0", { kind: "veth" }), link(6, "eth0", { kind: undefined })],
    addresses: [...healthy.addresses, address(2, "10.220.0.9")],
    saved: parseIptablesSave(save([...desired.jumps, ...fixed, ...desired.rules, strayRule, taggedElsewhere, foreign, duplicate])),
  });
  t.deepEqual(plan.deleteTaps, ["rikgggggggggggg"]);
  t.deepEqual(plan.removeAddresses, [address(2, "10.220.0.9")]);
  t.deepEqual(
    plan.rules.delete.map((r) => `${r.chain} ${r.spec}`).sort(),
    [strayRule, taggedElsewhere, duplicate].map((r) => `${r.chain} ${r.spec.replaceAll('"', "")}`).sort(),
  );
  t.deepEqual(plan.rules.append, []);
  t.deepEqual(planActions(plan), { address_removed: 1, tap_removed: 1, rule_removed: 3 });
});

test("a device with our name that is not a TAP is replaced by one", (t) => {
  const plan = planReconcile(desired, { ...healthy, links: [link(2, tapA.tapName, { kind: "veth" }), link(3, tapB.tapName)] });
  t.deepEqual(plan.createTaps, [tapA]);
});

test("a node chain missing a rule in the middle is flushed and rewritten whole, in order", (t) => {
  const second = fixed.findIndex((rule) => rule.chain === "RIKLET-FORWARD") + 1;
  const missingOne = fixed.filter((_, index) => index !== second);
  const plan = planReconcile(desired, { ...healthy, saved: parseIptablesSave(save([...desired.jumps, ...missingOne, ...desired.rules])) });
  const forward = fixed.filter((rule) => rule.chain === "RIKLET-FORWARD");
  t.deepEqual(plan.rules.flushChains, [{ table: "filter", name: "RIKLET-FORWARD" }]);
  t.deepEqual(plan.rules.append, forward);
  t.deepEqual(plan.rules.delete, []);
  t.deepEqual(planActions(plan), { chain_rewritten: 1, rule_added: forward.length });
});

test("a rule another tool appended to a node chain, or reordered rules, make it rewritten", (t) => {
  const input = fixed.filter((rule) => rule.chain === "RIKLET-INPUT");
  const others = fixed.filter((rule) => rule.chain !== "RIKLET-INPUT");
  const appended: Rule = { table: "filter", chain: "RIKLET-INPUT", spec: "-p udp -j ACCEPT" };
  for (const content of [[...input, appended], [...input].reverse()]) {
    const plan = planReconcile(desired, { ...healthy, saved: parseIptablesSave(save([...desired.jumps, ...others, ...content, ...desired.rules])) });
    t.deepEqual(plan.rules.flushChains, [{ table: "filter", name: "RIKLET-INPUT" }]);
    t.deepEqual(plan.rules.append, input);
  }
});

test("the layout of an older version is replaced: a tagged MASQUERADE in POSTROUTING goes", (t) => {
  const old: Rule = { table: "nat", chain: "POSTROUTING", spec: `-s ${POOL} ! -d ${POOL} -m comment --comment rik-network -j MASQUERADE` };
  const plan = planReconcile(desired, { ...healthy, saved: parseIptablesSave(save([...desired.jumps, ...fixed, ...desired.rules, old])) });
  t.deepEqual(plan.rules.delete.map((r) => `${r.chain} ${r.spec}`), [`POSTROUTING ${old.spec}`]);
  t.deepEqual(planActions(plan), { rule_removed: 1 });
});

test("turning localhost off changes the OUTPUT jump and drops the loopback MASQUERADE", (t) => {
  const off = { pool: POOL, localhost: false, egressDeny: ["169.254.0.0/16"] };
  const plan = planReconcile({ ...desired, jumps: nodeJumpRules(off), fixed: nodeChainRules(off) }, healthy);
  t.deepEqual(plan.rules.flushChains, [{ table: "nat", name: "RIKLET-POSTROUTING" }]);
  t.deepEqual(plan.rules.insert.map((r) => r.chain), ["OUTPUT"]);
  t.deepEqual(plan.rules.delete.map((r) => r.chain), ["OUTPUT"]);
});
