import test from "ava";
import { instanceRules, nodeChains, nodeJumpRules, nodePoolRules, parseIptablesSave, type Rule } from "./iptables-rules.js";
import { planActions, planReconcile, type DesiredState } from "./reconcile-plan.js";
import type { AddressInfo, LinkInfo } from "./rtnetlink.js";

const POOL = "10.220.0.0/24";
const tapA = { tapName: "rikaaaaaaaaaaaa", hostIp: "10.220.0.1", prefixLength: 30, mtu: 1500 };
const tapB = { tapName: "rikbbbbbbbbbbbb", hostIp: "10.220.0.5", prefixLength: 30, mtu: 1500 };
const rulesA = instanceRules({ instanceId: "a", tapName: tapA.tapName, guestIp: "10.220.0.2", ports: [{ protocol: "tcp", hostPort: 8080, guestPort: 80 }] });
const rulesB = instanceRules({ instanceId: "b", tapName: tapB.tapName, guestIp: "10.220.0.6", ports: [] });

const desired: DesiredState = {
  taps: [tapA, tapB],
  chains: nodeChains,
  jumps: nodeJumpRules(),
  rules: [...nodePoolRules(POOL), ...rulesA, ...rulesB],
};

function save(rules: readonly Rule[], chains = ["nat RIKLET", "filter RIKLET-FORWARD"]): string {
  const lines: string[] = [];
  for (const table of ["nat", "filter"]) {
    lines.push(`*${table}`);
    for (const chain of chains.filter((c) => c.startsWith(table))) lines.push(`:${chain.split(" ")[1]} - [0:0]`);
    for (const rule of rules.filter((r) => r.table === table)) lines.push(`-A ${rule.chain} ${rule.spec.replaceAll('"', "")}`);
    lines.push("COMMIT");
  }
  return lines.join("\n");
}

const link = (index: number, name: string, extra: Partial<LinkInfo> = {}): LinkInfo => ({ index, name, kind: "tun", up: true, mtu: 1500, ...extra });
const address = (index: number, a: string): AddressInfo => ({ index, address: a, prefixLength: 30 });
const healthy = {
  links: [link(1, "lo", { kind: undefined }), link(2, tapA.tapName), link(3, tapB.tapName)],
  addresses: [address(2, "10.220.0.1"), address(3, "10.220.0.5")],
  saved: parseIptablesSave(save([...desired.jumps, ...desired.rules])),
};

test("a kernel that matches needs nothing", (t) => {
  const plan = planReconcile(desired, healthy);
  t.deepEqual(planActions(plan), {});
});

test("an empty node gets chains, jumps inserted, rules appended and TAPs created", (t) => {
  const plan = planReconcile(desired, { links: [], addresses: [], saved: parseIptablesSave(save([], [])) });
  t.deepEqual(plan.createTaps, [tapA, tapB]);
  t.deepEqual(plan.rules.createChains, nodeChains);
  t.deepEqual(plan.rules.insert, nodeJumpRules());
  t.deepEqual(plan.rules.append, [...nodePoolRules(POOL), ...rulesA, ...rulesB]);
  t.deepEqual(planActions(plan), { tap_created: 2, chain_created: 2, rule_added: 3 + 2 + 4 });
});

test("a flushed RIKLET chain gets its DNAT back, and nothing else", (t) => {
  const flushed = [...desired.jumps, ...desired.rules].filter((r) => r.chain !== "RIKLET");
  const plan = planReconcile(desired, { ...healthy, saved: parseIptablesSave(save(flushed)) });
  t.deepEqual(plan.rules.append, rulesA.filter((r) => r.chain === "RIKLET"));
  t.deepEqual(planActions(plan), { rule_added: 1 });
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
  const strayRule: Rule = { table: "nat", chain: "RIKLET", spec: '-p tcp -m tcp --dport 9999 -m comment --comment "rik:gone" -j DNAT --to-destination 10.220.0.10:80' };
  const taggedElsewhere: Rule = { table: "filter", chain: "FORWARD", spec: '-i rikgggggggggggg -m comment --comment "rik:gone" -j ACCEPT' };
  const foreign: Rule = { table: "filter", chain: "FORWARD", spec: "-i eth9 -j DROP" };
  const duplicate = rulesA[0]!;
  const plan = planReconcile(desired, {
    links: [...healthy.links, link(4, "rikgggggggggggg"), link(5, "rikgggggggggggg0", { kind: "veth" }), link(6, "eth0", { kind: undefined })],
    addresses: [...healthy.addresses, address(2, "10.220.0.9")],
    saved: parseIptablesSave(save([...desired.jumps, ...desired.rules, strayRule, taggedElsewhere, foreign, duplicate])),
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
