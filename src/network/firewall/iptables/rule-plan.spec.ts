/** What a reconcile plans for the iptables firewall's rules, given what iptables-save shows. */
import test from "ava";
import { chainKey, instanceRules, nodeChainRules, nodeChains, nodeJumpRules, parseIptablesSave, type Rule, type SavedRules } from "./iptables-rules.js";
import { planRules, ruleActions, type DesiredRules } from "./rule-plan.js";

const POOL = "10.220.0.0/24";
const rulesA = instanceRules({ instanceId: "a", guestIp: "10.220.0.2", ports: [{ protocol: "tcp", hostPort: 8080, guestPort: 80 }] });
const rulesB = instanceRules({ instanceId: "b", guestIp: "10.220.0.6", ports: [{ protocol: "udp", hostPort: 5353, guestPort: 53 }] });
const nodeOptions = { pool: POOL, localhost: true, egressDeny: ["169.254.0.0/16"] };
const fixed = nodeChainRules(nodeOptions);

const desired: DesiredRules = {
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

/** What iptables-save shows on a node that holds exactly the desired rules, and then `more`. */
const savedWith = (...more: Rule[]): SavedRules => parseIptablesSave(save([...desired.jumps, ...fixed, ...desired.rules, ...more]));
const healthy = savedWith();

test("a kernel that matches needs nothing", (t) => {
  t.deepEqual(ruleActions(planRules(desired, healthy)), {});
});

test("an empty node gets chains, jumps inserted and rules appended", (t) => {
  const plan = planRules(desired, parseIptablesSave(save([], [])));
  t.deepEqual(plan.createChains, nodeChains());
  t.deepEqual(plan.insert, nodeJumpRules(nodeOptions));
  t.deepEqual(plan.flushChains, []);
  t.deepEqual(plan.append, [...fixed, ...rulesA, ...rulesB]);
  t.deepEqual(ruleActions(plan), {
    chain_created: nodeChains().length,
    rule_added: nodeJumpRules(nodeOptions).length + fixed.length + rulesA.length + rulesB.length,
  });
});

test("a flushed DNAT shard gets its DNAT back, and nothing else", (t) => {
  const flushed = [...desired.jumps, ...fixed, ...desired.rules].filter((r) => r.chain !== "RIKLET-P15");
  const plan = planRules(desired, parseIptablesSave(save(flushed)));
  t.deepEqual(plan.append, rulesA.filter((r) => r.chain === "RIKLET-P15"));
  t.deepEqual(ruleActions(plan), { rule_added: 1 });
});

test("a flushed RIKLET gets its jumps to the shards back, in order", (t) => {
  const flushed = [...desired.jumps, ...fixed, ...desired.rules].filter((r) => r.chain !== "RIKLET");
  const plan = planRules(desired, parseIptablesSave(save(flushed)));
  t.deepEqual(plan.flushChains, [{ table: "nat", name: "RIKLET" }]);
  t.deepEqual(plan.append, fixed.filter((r) => r.chain === "RIKLET"));
});

test("chains named like ours that are not wanted any more are removed whole, after what jumps to them", (t) => {
  const chains = [...nodeChains().map(chainKey), "filter RIKLET-INSTANCES-G7", "nat RIKLET-OLD"];
  const inStale: Rule = { table: "filter", chain: "RIKLET-INSTANCES-G7", spec: "-s 10.9.9.9/32 -j ACCEPT" };
  const foreignChain = "filter OTHER-TOOL";
  const plan = planRules(desired, parseIptablesSave(save([...desired.jumps, ...fixed, ...desired.rules, inStale], [...chains, foreignChain])));
  t.deepEqual(plan.deleteChains, [
    { table: "nat", name: "RIKLET-OLD" },
    { table: "filter", name: "RIKLET-INSTANCES-G7" },
  ]);
  t.deepEqual(plan.delete, [], "the stale chain's rules go with its flush");
  t.deepEqual(ruleActions(plan), { chain_removed: 2 });
});

test("what no instance owns is removed: our rules and duplicates", (t) => {
  const strayRule: Rule = { table: "nat", chain: "RIKLET-P19", spec: '-p tcp -m tcp --dport 9999 -m comment --comment "rik:gone" -j DNAT --to-destination 10.220.0.10:80' };
  const taggedElsewhere: Rule = { table: "filter", chain: "FORWARD", spec: '-i rikgggggggggggg -m comment --comment "rik:gone" -j ACCEPT' };
  const foreign: Rule = { table: "filter", chain: "FORWARD", spec: "-i eth9 -j DROP" };
  const duplicate = rulesA[0]!;
  const plan = planRules(desired, savedWith(strayRule, taggedElsewhere, foreign, duplicate));
  t.deepEqual(
    plan.delete.map((r) => `${r.chain} ${r.spec}`).sort(),
    [strayRule, taggedElsewhere, duplicate].map((r) => `${r.chain} ${r.spec.replaceAll('"', "")}`).sort(),
  );
  t.deepEqual(plan.append, []);
  t.deepEqual(ruleActions(plan), { rule_removed: 3 });
});

test("a node chain missing a rule in the middle is flushed and rewritten whole, in order", (t) => {
  const second = fixed.findIndex((rule) => rule.chain === "RIKLET-FORWARD") + 1;
  const missingOne = fixed.filter((_, index) => index !== second);
  const plan = planRules(desired, parseIptablesSave(save([...desired.jumps, ...missingOne, ...desired.rules])));
  const forward = fixed.filter((rule) => rule.chain === "RIKLET-FORWARD");
  t.deepEqual(plan.flushChains, [{ table: "filter", name: "RIKLET-FORWARD" }]);
  t.deepEqual(plan.append, forward);
  t.deepEqual(plan.delete, []);
  t.deepEqual(ruleActions(plan), { chain_rewritten: 1, rule_added: forward.length });
});

test("a rule another tool appended to a node chain, or reordered rules, make it rewritten", (t) => {
  const input = fixed.filter((rule) => rule.chain === "RIKLET-INPUT");
  const others = fixed.filter((rule) => rule.chain !== "RIKLET-INPUT");
  const appended: Rule = { table: "filter", chain: "RIKLET-INPUT", spec: "-p udp -j ACCEPT" };
  for (const content of [[...input, appended], [...input].reverse()]) {
    const plan = planRules(desired, parseIptablesSave(save([...desired.jumps, ...others, ...content, ...desired.rules])));
    t.deepEqual(plan.flushChains, [{ table: "filter", name: "RIKLET-INPUT" }]);
    t.deepEqual(plan.append, input);
  }
});

test("the layout of an older version is replaced: a tagged MASQUERADE in POSTROUTING goes", (t) => {
  const old: Rule = { table: "nat", chain: "POSTROUTING", spec: `-s ${POOL} ! -d ${POOL} -m comment --comment rik-network -j MASQUERADE` };
  const plan = planRules(desired, savedWith(old));
  t.deepEqual(plan.delete.map((r) => `${r.chain} ${r.spec}`), [`POSTROUTING ${old.spec}`]);
  t.deepEqual(ruleActions(plan), { rule_removed: 1 });
});

test("turning localhost off changes the OUTPUT jump and drops the loopback MASQUERADE", (t) => {
  const off = { pool: POOL, localhost: false, egressDeny: ["169.254.0.0/16"] };
  const plan = planRules({ ...desired, jumps: nodeJumpRules(off), fixed: nodeChainRules(off) }, healthy);
  t.deepEqual(plan.flushChains, [{ table: "nat", name: "RIKLET-POSTROUTING" }]);
  t.deepEqual(plan.insert.map((r) => r.chain), ["OUTPUT"]);
  t.deepEqual(plan.delete.map((r) => r.chain), ["OUTPUT"]);
});
