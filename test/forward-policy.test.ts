/**
 * A node that another tool already firewalls: FORWARD policy DROP, a chain of its own jumped
 * to from FORWARD, and rules in nat and INPUT. The service must make its instances work
 * anyway (its FORWARD jump first, once), and leave every rule it did not write exactly where
 * it was, through a CREATE, a restart and a DESTROY.
 */
import test from "ava";
import { attachGuest } from "./helpers/attach-guest.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { iptablesSave, rulesByTable } from "./helpers/kernel-state.js";
import type { Topology } from "./helpers/netns.js";
import { startNode } from "./helpers/start-node.js";
import { startService } from "./helpers/service-process.js";
import { functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

/** What "another tool" set up in the node before the service ever ran. */
const FOREIGN_RULES: readonly string[][] = [
  ["-P", "FORWARD", "DROP"],
  ["-N", "OTHER-TOOL"],
  ["-A", "FORWARD", "-j", "OTHER-TOOL"],
  ["-A", "OTHER-TOOL", "-s", "192.0.2.0/24", "-j", "DROP"],
  ["-A", "INPUT", "-p", "tcp", "--dport", "2222", "-j", "ACCEPT"],
  ["-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "RETURN"],
];

async function installForeignRules(topology: Topology): Promise<void> {
  for (const rule of FOREIGN_RULES) await topology.execNode("iptables", rule);
}

/** True when `part` appears in `whole` in the same order (other lines may sit in between). */
function isSubsequence(part: readonly string[], whole: readonly string[]): boolean {
  let next = 0;
  for (const line of whole) if (line === part[next]) next++;
  return next === part.length;
}

/** Every line of `before` is still in `after`, in the same order, and no `-A` line of it got duplicated. */
function keptAsIs(before: string, after: string): string[] {
  const [b, a] = [before.split("\n"), after.split("\n")];
  const problems: string[] = [];
  if (!isSubsequence(b, a)) problems.push(`lines missing or reordered:\n${before}\n--- now ---\n${after}`);
  for (const line of b.filter((l) => l.startsWith("-A "))) {
    const count = a.filter((l) => l === line).length;
    if (count !== 1) problems.push(`${count} times: ${line}`);
  }
  return problems;
}

/** The FORWARD rules, in order. */
async function forwardRules(ns: string): Promise<string[]> {
  return (rulesByTable(await iptablesSave(ns, "filter"))["filter"] ?? []).filter((line) => line.startsWith("-A FORWARD "));
}

test("with FORWARD policy DROP and another tool's rules, traffic flows, the jump is first and once, and foreign rules stay as they were", async (t) => {
  let foreign = "";
  const { topology, service, client } = await startNode(t, {
    beforeService: async (topology) => {
      await installForeignRules(topology);
      foreign = await iptablesSave(topology.node);
    },
  });
  t.regex(foreign, /^:FORWARD DROP$/m, "the setup took");

  // Step 1: an instance with a guest, under the other tool's DROP policy.
  const network = await client.create("fn-a", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const guest = await attachGuest(topology.node, network);
  await startHttpServer(guest.guestNs, 3000, "hello from the guest");
  const world = await startHttpServer(topology.world, 9000, "hello from the world");

  // Step 2: ingress and egress both work.
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "hello from the guest" });
  t.deepEqual(await httpGet(guest.guestNs, `http://${topology.worldIp}:9000/`, 5000), { ok: true, status: 200, body: "hello from the world" });
  t.is(world.requests().length, 1);

  // Step 3: the service's FORWARD jump is the first FORWARD rule, and there is one.
  const jumps = (rules: string[]) => rules.filter((line) => line.includes("-j RIKLET-FORWARD"));
  let forward = await forwardRules(topology.node);
  t.is(jumps(forward).length, 1, forward.join("\n"));
  t.true(forward[0]?.includes("-j RIKLET-FORWARD"), forward.join("\n"));
  t.deepEqual(keptAsIs(foreign, await iptablesSave(topology.node)), []);

  // Step 4: a restart sets the node up again without a second jump or touching foreign rules.
  await service.stop("SIGTERM");
  const again = await startService({ nodeNs: topology.node, pool: "10.220.0.0/24", socketPath: service.socketPath });
  t.teardown(() => again.stop());
  forward = await forwardRules(topology.node);
  t.is(jumps(forward).length, 1, forward.join("\n"));
  t.true(forward[0]?.includes("-j RIKLET-FORWARD"), forward.join("\n"));
  t.deepEqual(keptAsIs(foreign, await iptablesSave(topology.node)), []);
  t.like(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, body: "hello from the guest" });

  // Step 5: after DESTROY the other tool's rules and policy are exactly as it left them.
  const againClient = new WorkloadClient(again.address);
  t.teardown(() => againClient.close());
  await againClient.destroy("fn-a");
  const after = await iptablesSave(topology.node);
  t.deepEqual(keptAsIs(foreign, after), []);
  t.regex(after, /^:FORWARD DROP$/m);
});
