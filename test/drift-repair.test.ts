/**
 * Drift: TAPs, addresses and rules changed behind the service's back are repaired, both
 * when it starts and by its periodic resync, and what it does not own stays untouched.
 */
import test from "ava";
import { httpGet, startGuest, startHttpServer } from "./helpers/guest-relay.js";
import { kernelDiff } from "./helpers/kernel-diff.js";
import { iptablesSave, rulesMatching } from "./helpers/kernel-state.js";
import { Topology } from "./helpers/netns.js";
import { startService, type LogEntry } from "./helpers/service-process.js";
import { until } from "./helpers/until.js";
import { functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/24";

const reconciled = (trigger: string) => (entry: LogEntry) => entry.message === "reconciled" && entry["trigger"] === trigger;

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
  const damage: string[][] = [
    ["ip", "link", "del", tapOf(a)],
    ["ip", "addr", "flush", "dev", tapOf(c)],
    // The jumps to the DNAT shards, and the shard that holds a's and b's DNATs (8001, 8002).
    ["iptables", "-t", "nat", "-F", "RIKLET"],
    ["iptables", "-t", "nat", "-F", "RIKLET-P15"],
    // The node-wide ACCEPT of DNATed connections to guests: without it, every exposed port is refused.
    ["iptables", "-D", "RIKLET-FORWARD", "-d", POOL, "-o", "rik+", "-m", "conntrack", "--ctstate", "DNAT", "-m", "comment", "--comment", "rik-network", "-j", "ACCEPT"],
    ["ip", "tuntap", "add", "dev", "rikzzzzzzzzzzzz", "mode", "tap"],
    ["iptables", "-t", "nat", "-A", "RIKLET-P15", "-p", "tcp", "--dport", "7777", "-m", "comment", "--comment", "rik:stray", "-j", "DNAT", "--to-destination", "10.220.0.99:1"],
    ["iptables", "-A", "FORWARD", "-i", "eth9", "-j", "DROP"],
    ["sysctl", "-qw", `net.ipv4.conf.${tapOf(b)}.route_localnet=0`],
  ];
  for (const [file, ...args] of damage) await topology.execNode(file!, args);
  t.notDeepEqual(await kernelDiff(topology.node, [a, b, c], POOL), []);

  // Step 2: the restart repairs all of it, and says so in one line.
  const second = await startService({ nodeNs: topology.node, pool: POOL, socketPath: first.socketPath });
  t.teardown(() => second.stop());
  t.deepEqual(await kernelDiff(topology.node, [a, b, c], POOL), []);
  const line = await second.waitForLog(reconciled("start"));
  // 256 jumps (a port range per protocol and shard) in the rewritten RIKLET, the 10 rules of the
  // rewritten RIKLET-FORWARD (3 of them the untracked drop and the default egress deny), and the 2 DNATs.
  t.like(line, {
    instances: 3,
    actions: {
      tap_created: 1,
      tap_repaired: 1,
      tap_removed: 1,
      chain_rewritten: 2,
      rule_added: 256 + 10 + 2,
      rule_removed: 1,
      route_localnet_repaired: 1,
    },
  });
  for (const n of [a, b, c]) {
    const { stdout } = await topology.execNode("sysctl", ["-n", `net.ipv4.conf.${tapOf(n)}.route_localnet`]);
    t.is(String(stdout).trim(), "1", `route_localnet of ${n.instanceId}'s TAP`);
  }
  t.deepEqual(rulesMatching(await iptablesSave(topology.node), "eth9"), ["-A FORWARD -i eth9 -j DROP"], "not ours: left alone");
  const lister = new WorkloadClient(second.address);
  t.teardown(() => lister.close());
  t.deepEqual((await lister.list()).map((n) => n.instanceId).sort(), ["a", "b", "c"]);
});

test("the periodic resync repairs a deleted TAP and flushed RIKLET chains while the service runs", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node, pool: POOL, extraArgs: ["--resync-interval", "1"] });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  const web = await client.create("web", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const other = await client.create("other", functionDefinition({ exposure: { port: 8081, targetPort: 3000 } }));

  await topology.execNode("ip", ["link", "del", web.network.value!.tapName]);
  await topology.execNode("iptables", ["-t", "nat", "-F", "RIKLET"]);
  await topology.execNode("iptables", ["-t", "nat", "-F", "RIKLET-P15"]);
  t.notDeepEqual(await kernelDiff(topology.node, [web, other], POOL), []);

  await until("the resync to repair the node", async () =>
    (await kernelDiff(topology.node, [web, other], POOL)).length === 0 ? true : undefined,
  );
  const line = await service.waitForLog((entry) => reconciled("resync")(entry) && Object.keys(entry["actions"] as object).length > 0);
  t.like(line, { actions: { tap_created: 1, chain_rewritten: 1, rule_added: 256 + 2 } });

  // The repaired TAP carries traffic again: a VMM re-attaching to it is reachable from the world.
  const fn = web.network.value!;
  const guest = await startGuest({ nodeNs: topology.node, tapName: fn.tapName, guestIp: fn.guestIp, hostIp: fn.hostIp, prefixLength: fn.prefixLength, guestMac: fn.guestMac, mtu: fn.mtu });
  await startHttpServer(guest.guestNs, 3000, "repaired");
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "repaired" });
});
