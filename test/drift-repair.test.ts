/**
 * Drift: TAPs, addresses and rules changed behind the service's back are repaired, both
 * when it starts and by its periodic resync, and what it does not own stays untouched. The
 * firewall damage is per backend (iptables chains and rules, or the nft table's elements,
 * rules, sets), and so are the reconcile's action names.
 */
import test from "ava";
import { TEST_FIREWALL_BACKEND } from "./helpers/firewall-backend.js";
import { httpGet, startGuest, startHttpServer } from "./helpers/guest-relay.js";
import { kernelDiff } from "./helpers/kernel-diff.js";
import { iptablesSave, NFT, nftTable, rulesMatching } from "./helpers/kernel-state.js";
import { Topology } from "./helpers/netns.js";
import { startService, type LogEntry } from "./helpers/service-process.js";
import { until } from "./helpers/until.js";
import { functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/24";

const reconciled = (trigger: string) => (entry: LogEntry) => entry.message === "reconciled" && entry["trigger"] === trigger;

/** The handle of the rule of the nft backend's `chain` that nft prints as `text`. */
async function nftRuleHandle(ns: string, chain: string, text: string): Promise<string> {
  const rule = (await nftTable(ns))?.chains[chain]?.rules.find((listed) => listed.text === text);
  if (rule === undefined) throw new Error(`no rule "${text}" in ${chain}`);
  return String(rule.handle);
}

/** A table of an operator's own, with a rule, which no reconcile may touch. */
const FOREIGN_TABLE = ["add table inet operator", "add chain inet operator checks", 'add rule inet operator checks iifname "eth9" drop', ""].join("\n");

test("at start, missing TAPs, addresses and rules are re-created and strays of ours removed; foreign rules stay", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const first = await startService({ nodeNs: topology.node, pool: POOL });
  t.teardown(() => first.stop());
  const client = new WorkloadClient(first.address);
  const a = await client.create("a", functionDefinition({ exposure: { port: 8001, targetPort: 80 } }));
  const b = await client.create("b", functionDefinition({ exposure: { port: 8002, targetPort: 80 } }));
  const c = await client.create("c", functionDefinition());
  client.close();
  await first.stop();

  // Step 1: an operator (or another tool) damages the node while the service is down.
  const tapOf = (n: typeof a) => n.network.value!.tapName;
  const links: string[][] = [
    ["ip", "link", "del", tapOf(a)],
    ["ip", "addr", "flush", "dev", tapOf(c)],
    ["ip", "tuntap", "add", "dev", "rikzzzzzzzzzzzz", "mode", "tap"],
    ["sysctl", "-qw", `net.ipv4.conf.${tapOf(b)}.route_localnet=0`],
    // Not ours, whatever the backend: left alone.
    ["iptables", "-A", "FORWARD", "-i", "eth9", "-j", "DROP"],
  ];
  const firewall: string[][] =
    TEST_FIREWALL_BACKEND === "nft"
      ? [
          // a's and b's DNATs, and a stray DNAT of ours.
          [NFT, "delete", "element", "inet", "rik-network", "ports", "{ tcp . 8001, tcp . 8002 }"],
          [NFT, "add", "element", "inet", "rik-network", "ports", "{ tcp . 7777 : 10.220.0.99 . 1 }"],
          // The node-wide accept of DNATed connections to guests: without it, every exposed port is refused.
          [NFT, "delete", "rule", "inet", "rik-network", "filter_forward", "handle", await nftRuleHandle(topology.node, "filter_forward", 'ip daddr @pool oifname "rik*" ct status dnat accept')],
          // The egress deny list emptied: guests would reach 169.254.0.0/16.
          [NFT, "flush", "set", "inet", "rik-network", "egress_deny"],
        ]
      : [
          // The jumps to the DNAT shards, and the shard that holds a's and b's DNATs (8001, 8002).
          ["iptables", "-t", "nat", "-F", "RIKLET"],
          ["iptables", "-t", "nat", "-F", "RIKLET-P15"],
          // The node-wide ACCEPT of DNATed connections to guests: without it, every exposed port is refused.
          ["iptables", "-D", "RIKLET-FORWARD", "-d", POOL, "-o", "rik+", "-m", "conntrack", "--ctstate", "DNAT", "-m", "comment", "--comment", "rik-network", "-j", "ACCEPT"],
          ["iptables", "-t", "nat", "-A", "RIKLET-P15", "-p", "tcp", "--dport", "7777", "-m", "comment", "--comment", "rik:stray", "-j", "DNAT", "--to-destination", "10.220.0.99:1"],
        ];
  for (const [file, ...args] of [...links, ...firewall]) await topology.execNode(file!, args);
  await topology.execNode(NFT, ["-f", "-"], { input: FOREIGN_TABLE });
  const foreignTable = String((await topology.execNode(NFT, ["list", "table", "inet", "operator"])).stdout);
  t.notDeepEqual(await kernelDiff(topology.node, [a, b, c], POOL), []);

  // Step 2: the restart repairs all of it, and says so in one line.
  const second = await startService({ nodeNs: topology.node, pool: POOL, socketPath: first.socketPath });
  t.teardown(() => second.stop());
  t.deepEqual(await kernelDiff(topology.node, [a, b, c], POOL), []);
  const line = await second.waitForLog(reconciled("start"));
  const linkActions = { tap_created: 1, tap_repaired: 1, tap_removed: 1, route_localnet_repaired: 1 };
  if (TEST_FIREWALL_BACKEND === "nft") {
    // The 2 DNATs added and the stray removed as elements, filter_forward flushed and refilled, egress_deny refilled.
    t.like(line, { instances: 3, actions: { ...linkActions, element_added: 2, element_removed: 1, chain_rewritten: 1, set_refilled: 1 } });
  } else {
    // 256 jumps (a port range per protocol and shard) in the rewritten RIKLET, the 10 rules of the
    // rewritten RIKLET-FORWARD (3 of them the untracked drop and the default egress deny), and the 2 DNATs.
    t.like(line, { instances: 3, actions: { ...linkActions, chain_rewritten: 2, rule_added: 256 + 10 + 2, rule_removed: 1 } });
  }
  for (const n of [a, b, c]) {
    const { stdout } = await topology.execNode("sysctl", ["-n", `net.ipv4.conf.${tapOf(n)}.route_localnet`]);
    t.is(String(stdout).trim(), "1", `route_localnet of ${n.instanceId}'s TAP`);
  }
  t.deepEqual(rulesMatching(await iptablesSave(topology.node), "eth9"), ["-A FORWARD -i eth9 -j DROP"], "not ours: left alone");
  t.is(String((await topology.execNode(NFT, ["list", "table", "inet", "operator"])).stdout), foreignTable, "nor is the operator's table");
  const lister = new WorkloadClient(second.address);
  t.teardown(() => lister.close());
  t.deepEqual((await lister.list()).map((n) => n.instanceId).sort(), ["a", "b", "c"]);
});

test("the periodic resync repairs a deleted TAP and a lost firewall (flushed RIKLET chains, or the nft table deleted) while the service runs", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node, pool: POOL, extraArgs: ["--resync-interval", "1"] });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  const web = await client.create("web", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const other = await client.create("other", functionDefinition({ exposure: { port: 8081, targetPort: 3000 } }));

  await topology.execNode("ip", ["link", "del", web.network.value!.tapName]);
  if (TEST_FIREWALL_BACKEND === "nft") {
    await topology.execNode(NFT, ["delete", "table", "inet", "rik-network"]);
  } else {
    await topology.execNode("iptables", ["-t", "nat", "-F", "RIKLET"]);
    await topology.execNode("iptables", ["-t", "nat", "-F", "RIKLET-P15"]);
  }
  t.notDeepEqual(await kernelDiff(topology.node, [web, other], POOL), []);

  await until("the resync to repair the node", async () =>
    (await kernelDiff(topology.node, [web, other], POOL)).length === 0 ? true : undefined,
  );
  const line = await service.waitForLog((entry) => reconciled("resync")(entry) && Object.keys(entry["actions"] as object).length > 0);
  t.like(line, { actions: TEST_FIREWALL_BACKEND === "nft" ? { tap_created: 1, table_created: 1, element_added: 2 } : { tap_created: 1, chain_rewritten: 1, rule_added: 256 + 2 } });

  // The repaired TAP carries traffic again: a VMM re-attaching to it is reachable from the world.
  const fn = web.network.value!;
  const guest = await startGuest({ nodeNs: topology.node, tapName: fn.tapName, guestIp: fn.guestIp, hostIp: fn.hostIp, prefixLength: fn.prefixLength, guestMac: fn.guestMac, mtu: fn.mtu });
  await startHttpServer(guest.guestNs, 3000, "repaired");
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "repaired" });
});
