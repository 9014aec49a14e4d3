/**
 * The nft backend's text and its reading of nft's JSON, against the real nft and kernel in a
 * throwaway namespace: what the plan writes, listed back and planned again, needs nothing;
 * drift made by hand is planned away until, again, nothing is needed. These check the
 * rendering and the parser together (the unit specs check each alone); the service's own use
 * of them is covered by every integration test of the nft pass. They start no service, so
 * both passes of `npm test` run them alike.
 */
import test from "ava";
import { findNft } from "../src/network/firewall/nftables/nft-firewall.js";
import { parseTableListing } from "../src/network/firewall/nftables/nft-listing.js";
import { chunks, planTable, type TablePlan } from "../src/network/firewall/nftables/nft-plan.js";
import { instanceElements, nodeTable, renderAddElements, renderDeleteElements, type MapElement } from "../src/network/firewall/nftables/nft-rules.js";
import type { NodeFirewallPolicy } from "../src/network/firewall/firewall.js";
import { createNamespace, deleteNamespace, execIn, uniqueName } from "./helpers/netns.js";

const nft = findNft();

async function inNamespace(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const ns = await createNamespace(uniqueName());
  t.teardown(() => deleteNamespace(ns));
  return ns;
}

async function load(ns: string, text: string): Promise<void> {
  if (text !== "") await execIn(ns, nft, ["-f", "-"], { input: text });
}

async function apply(ns: string, plan: TablePlan): Promise<void> {
  await load(ns, plan.setup);
  for (const slice of chunks(plan.removeElements)) await load(ns, renderDeleteElements(slice));
  for (const slice of chunks(plan.addElements)) await load(ns, renderAddElements(slice));
}

async function listed(ns: string) {
  const { stdout } = await execIn(ns, nft, ["-j", "list", "table", "inet", "rik-network"]);
  return parseTableListing(String(stdout));
}

/** `count` instances, every third one with a port bound to a node address, every other one with a UDP port too. */
function elementsOf(count: number): MapElement[] {
  return Array.from({ length: count }, (_, i) =>
    instanceElements({
      instanceId: `fn-${i}`,
      guestIp: `10.220.${i >> 6}.${((i & 63) << 2) + 2}`,
      ports: [
        { protocol: "tcp", hostPort: 20_000 + i, guestPort: 8080, ...(i % 3 === 0 ? { hostIp: "192.0.2.10" } : {}) },
        ...(i % 2 === 0 ? [{ protocol: "udp" as const, hostPort: 20_000 + i, guestPort: 53 }] : []),
      ],
    }),
  ).flat();
}

const policies: readonly [string, NodeFirewallPolicy][] = [
  ["the defaults", { pool: "10.220.0.0/16", localhost: true, egressDeny: ["169.254.0.0/16"] }],
  ["no localhost, overlapping and adjacent deny ranges", { pool: "10.220.0.0/16", localhost: false, egressDeny: ["192.0.2.0/25", "192.0.2.128/25", "169.254.0.0/16", "169.254.169.254/32"] }],
  ["no egress deny", { pool: "10.220.0.0/16", localhost: true, egressDeny: [] }],
];


for (const [name, policy] of policies) {
  test(`${name}: the table as planned, listed back, needs nothing more`, async (t) => {
    const ns = await inNamespace(t);
    const wanted = elementsOf(1500);
    const plan = planTable(nodeTable(policy), wanted, undefined);
    t.true(chunks(plan.addElements).length > 1, "more elements than one transaction takes");
    await apply(ns, plan);
    const again = planTable(nodeTable(policy), wanted, await listed(ns));
    t.deepEqual(again.actions, {});
    t.is(again.setup, "");
  });
}

test("drift made by hand is planned away: deleted and foreign rules, elements gone, changed and added, a set emptied, a chain on another hook, a stray chain and set", async (t) => {
  const ns = await inNamespace(t);
  const policy = policies[0]![1];
  const wanted = elementsOf(40);
  await apply(ns, planTable(nodeTable(policy), wanted, undefined));
  const handles = JSON.parse(String((await execIn(ns, nft, ["-a", "-j", "list", "chain", "inet", "rik-network", "filter_forward"])).stdout)) as {
    nftables: { rule?: { handle: number } }[];
  };
  const firstRule = handles.nftables.find((entry) => entry.rule !== undefined)!.rule!.handle;
  await load(
    ns,
    [
      `delete rule inet rik-network filter_forward handle ${firstRule}`,
      "add rule inet rik-network guest_input counter accept",
      "delete element inet rik-network ports { tcp . 20001 }",
      "delete element inet rik-network bound_ports { 192.0.2.10 . tcp . 20003 }",
      "delete element inet rik-network ports { tcp . 20002 }",
      "add element inet rik-network ports { tcp . 20002 : 10.220.9.9 . 1 }",
      "add element inet rik-network ports { tcp . 39999 : 10.220.9.9 . 1 }",
      "flush set inet rik-network egress_deny",
      "add chain inet rik-network stray_chain",
      "add set inet rik-network stray_set { type ipv4_addr; }",
      "delete chain inet rik-network nat_output",
      "add chain inet rik-network nat_output { type nat hook output priority 50; policy accept; }",
    ].join("\n") + "\n",
  );
  const repair = planTable(nodeTable(policy), wanted, await listed(ns));
  t.deepEqual(repair.actions, {
    object_removed: 3,
    set_refilled: 1,
    chain_created: 1,
    chain_rewritten: 6,
    element_removed: 2,
    element_added: 3,
  });
  await apply(ns, repair);
  const after = planTable(nodeTable(policy), wanted, await listed(ns));
  t.deepEqual(after.actions, {}, "one repair was enough");
});
