import test from "ava";
import type { ListedChain, ListedMap, ListedSet } from "./nft-listing.js";
import { chunks, planTable } from "./nft-plan.js";
import { cidrRange, instanceElements, nodeTable, ruleComment, type MapElement, type NodeTable } from "./nft-rules.js";

const policy = { pool: "10.220.0.0/24", localhost: true, egressDeny: ["169.254.0.0/16"] };
const node = nodeTable(policy);
const wanted: MapElement[] = [
  ...instanceElements({ instanceId: "a", guestIp: "10.220.0.2", ports: [{ protocol: "tcp", hostPort: 8080, guestPort: 3000 }] }),
  ...instanceElements({ instanceId: "b", guestIp: "10.220.0.6", ports: [{ protocol: "udp", hostPort: 5353, guestPort: 53, hostIp: "192.0.2.10" }] }),
];

/** What nft would list once `table` and `elements` are in place. */
function listedFrom(table: NodeTable, elements: readonly MapElement[]): { chains: Map<string, ListedChain>; sets: Map<string, ListedSet>; maps: Map<string, ListedMap> } {
  return {
    chains: new Map(
      table.chains.map((chain) => [
        chain.name,
        {
          name: chain.name,
          ...(chain.base === undefined ? {} : { base: { ...chain.base, policy: "accept" } }),
          comments: chain.rules.map((rule) => ruleComment(chain.name, rule)),
        },
      ]),
    ),
    sets: new Map(table.sets.map((set) => [set.name, { name: set.name, type: "ipv4_addr", flags: ["interval"], ranges: set.elements.map(cidrRange) }])),
    maps: new Map(
      table.maps.map((map) => [
        map.name,
        { name: map.name, type: map.type, data: map.data, elements: new Map(elements.filter((e) => e.map === map.name).map((e) => [e.key, e.value])) },
      ]),
    ),
  };
}

test("no table: one setup transaction makes the table, its sets, maps and chains (every chain before any rule), then every element", (t) => {
  const plan = planTable(node, wanted, undefined);
  const lines = plan.setup.trimEnd().split("\n");
  t.is(lines[0], "add table inet rik-network");
  const lastChain = lines.findLastIndex((line) => line.startsWith("add chain "));
  const firstRule = lines.findIndex((line) => line.startsWith("add rule "));
  t.true(lastChain < firstRule, "guest_input exists before filter_input's jump to it");
  t.is(lines.filter((line) => line.startsWith("add chain ")).length, node.chains.length);
  t.is(lines.filter((line) => line.startsWith("add rule ")).length, node.chains.reduce((n, chain) => n + chain.rules.length, 0));
  t.deepEqual(plan.addElements, wanted);
  t.deepEqual(plan.actions, { table_created: 1, element_added: 2 });
});

test("a table in shape with every element: nothing to do", (t) => {
  const plan = planTable(node, wanted, listedFrom(node, wanted));
  t.is(plan.setup, "");
  t.deepEqual(plan.removeElements, []);
  t.deepEqual(plan.addElements, []);
  t.deepEqual(plan.actions, {});
});

test("elements: a missing one added, an orphan removed, one pointing elsewhere replaced; nothing else touched", (t) => {
  const orphan: MapElement = { map: "ports", key: "tcp . 9090", value: "10.220.0.10 . 80" };
  const moved: MapElement = { ...wanted[0]!, value: "10.220.0.14 . 3000" };
  const plan = planTable(node, wanted, listedFrom(node, [moved, orphan]));
  t.is(plan.setup, "");
  t.deepEqual(plan.removeElements, [
    { map: "ports", key: "tcp . 8080" },
    { map: "ports", key: "tcp . 9090" },
  ]);
  t.deepEqual(plan.addElements, wanted);
  t.deepEqual(plan.actions, { element_removed: 2, element_added: 2 });
});

test("a chain missing a rule, or with a rule of someone else, is flushed and refilled in place", (t) => {
  const listed = listedFrom(node, wanted);
  const forward = listed.chains.get("filter_forward")!;
  listed.chains.set("filter_forward", { ...forward, comments: forward.comments.slice(1) });
  const input = listed.chains.get("guest_input")!;
  listed.chains.set("guest_input", { ...input, comments: [...input.comments, undefined] });
  const plan = planTable(node, wanted, listed);
  const lines = plan.setup.trimEnd().split("\n");
  t.deepEqual(lines.filter((line) => !line.startsWith("add rule ")), ["flush chain inet rik-network filter_forward", "flush chain inet rik-network guest_input"]);
  const refilled = node.chains.filter((chain) => chain.name === "filter_forward" || chain.name === "guest_input").reduce((n, chain) => n + chain.rules.length, 0);
  t.is(lines.filter((line) => line.startsWith("add rule ")).length, refilled);
  t.deepEqual(plan.actions, { chain_rewritten: 2 });
});

test("a policy change (localhost off) rewrites exactly the chains whose rules changed", (t) => {
  const plan = planTable(nodeTable({ ...policy, localhost: false }), wanted, listedFrom(node, wanted));
  t.deepEqual(plan.setup.split("\n").filter((line) => line.startsWith("flush ")), [
    "flush chain inet rik-network nat_output",
    "flush chain inet rik-network nat_postrouting",
  ]);
  t.deepEqual(plan.actions, { chain_rewritten: 2 });
});

test("a chain on the wrong hook, a stale chain and a stale set: every chain flushed first, then the deletions, then the rebuild", (t) => {
  const listed = listedFrom(node, wanted);
  const raw = listed.chains.get("raw_prerouting")!;
  listed.chains.set("raw_prerouting", { ...raw, base: { ...raw.base!, priority: 0 } });
  listed.chains.set("old_chain", { name: "old_chain", comments: [] });
  listed.sets.set("old_set", { name: "old_set", type: "ipv4_addr", flags: [], ranges: [] });
  const plan = planTable(node, wanted, listed);
  const lines = plan.setup.trimEnd().split("\n");
  const flushes = lines.filter((line) => line.startsWith("flush chain "));
  t.is(flushes.length, listed.chains.size, "every listed chain: a rule anywhere may reference what is deleted");
  const firstDelete = lines.findIndex((line) => line.startsWith("delete "));
  t.true(lines.slice(0, firstDelete).every((line) => line.startsWith("flush chain ")));
  t.deepEqual(lines.filter((line) => line.startsWith("delete ")), [
    "delete chain inet rik-network raw_prerouting",
    "delete chain inet rik-network old_chain",
    "delete set inet rik-network old_set",
  ]);
  t.true(lines.includes("add chain inet rik-network raw_prerouting { type filter hook prerouting priority -300; policy accept; }"));
  t.is(lines.filter((line) => line.startsWith("add rule ")).length, node.chains.reduce((n, chain) => n + chain.rules.length, 0));
  t.deepEqual(plan.actions, { object_removed: 3, chain_created: 1, chain_rewritten: node.chains.length - 1 });
});

test("a set listed as a map (sets and maps share names) is deleted as stale and made again as a set", (t) => {
  const listed = listedFrom(node, wanted);
  listed.sets.delete("pool");
  listed.maps.set("pool", { name: "pool", type: ["ipv4_addr"], data: "ipv4_addr", elements: new Map() });
  const lines = planTable(node, wanted, listed).setup.trimEnd().split("\n");
  const deleted = lines.indexOf("delete map inet rik-network pool");
  const made = lines.findIndex((line) => line.startsWith("add set inet rik-network pool "));
  t.true(deleted !== -1 && made > deleted);
});

test("a map of the wrong type is recreated, and all of its elements added again", (t) => {
  const listed = listedFrom(node, wanted);
  listed.maps.set("ports", { ...listed.maps.get("ports")!, data: "ipv4_addr" });
  const plan = planTable(node, wanted, listed);
  t.true(plan.setup.includes("delete map inet rik-network ports\n"));
  t.true(plan.setup.includes("add map inet rik-network ports { type inet_proto . inet_service : ipv4_addr . inet_service; }"));
  t.deepEqual(plan.removeElements, []);
  t.deepEqual(plan.addElements, [wanted[0]]);
});

test("a set whose addresses differ is flushed and refilled; the same addresses split otherwise are left alone", (t) => {
  const listed = listedFrom(node, wanted);
  listed.sets.set("egress_deny", { ...listed.sets.get("egress_deny")!, ranges: [] });
  t.is(planTable(node, wanted, listed).setup, "flush set inet rik-network egress_deny\nadd element inet rik-network egress_deny { 169.254.0.0/16 }\n");
  const split = listedFrom(node, wanted);
  split.sets.set("egress_deny", { ...split.sets.get("egress_deny")!, ranges: [cidrRange("169.254.128.0/17"), cidrRange("169.254.0.0/17")] });
  t.is(planTable(node, wanted, split).setup, "");
});

test("chunks: at most the limit per slice", (t) => {
  t.deepEqual(chunks([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  t.deepEqual(chunks([], 2), []);
  t.is(chunks(Array.from({ length: 2500 }, (_, i) => i)).length, 3);
});
