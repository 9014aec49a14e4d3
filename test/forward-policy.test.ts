/**
 * A node that another tool already firewalls with iptables: FORWARD policy DROP, a chain of
 * its own jumped to from FORWARD, and rules in nat and INPUT. The service must leave every
 * rule it did not write exactly where it was, through a CREATE, a restart and a DESTROY.
 *
 * What the guests get differs by backend, by design of each. The iptables backend puts its
 * FORWARD jump first, once, so its instances work anyway. The nft backend has a table of its
 * own: its accept ends only its own table's verdict, and iptables' FORWARD (another nftables
 * table) still drops. So the service warns, naming that chain, and guests' forwarded traffic
 * flows once the operator accepts rik+ there. Each test below runs only under its backend.
 */
import { attachGuest } from "./helpers/attach-guest.js";
import { testOnBackend } from "./helpers/backend-test.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { kernelDiff } from "./helpers/kernel-diff.js";
import { iptablesSave, rulesByTable } from "./helpers/kernel-state.js";
import type { TeardownHost } from "./helpers/netns.js";
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

/** The service started on a node where the other tool's rules are already in place, and iptables-save as that tool left it. */
async function foreignFirewalledNode(t: TeardownHost, firewallBackend?: "auto") {
  let foreign = "";
  const node = await startNode(t, {
    ...(firewallBackend === undefined ? {} : { service: { firewallBackend } }),
    beforeService: async (topology) => {
      for (const rule of FOREIGN_RULES) await topology.execNode("iptables", rule);
      foreign = await iptablesSave(topology.node);
    },
  });
  return { ...node, foreign };
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

const POOL = "10.220.0.0/24";

/** iptables' FORWARD chain as the nft backend's warning names it. */
const IPTABLES_FORWARD = "ip filter FORWARD";
const FORWARD_DROP_WARNING = /the firewall backend is defeated on this node/;

// The iptables backend's own FORWARD jump makes the instances work: only under that backend.
testOnBackend("iptables", "with FORWARD policy DROP and another tool's rules, traffic flows, the jump is first and once, and foreign rules stay as they were", async (t) => {
  const { topology, service, client, foreign } = await foreignFirewalledNode(t);
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

// The nft backend's table cannot override another table's drop: only under that backend.
testOnBackend("nft", "with FORWARD policy DROP and another tool's rules, it warns naming that chain, leaves iptables exactly as it was, and traffic flows once the operator accepts rik+ there", async (t) => {
  const { topology, service, client, foreign } = await foreignFirewalledNode(t);
  t.regex(foreign, /^:FORWARD DROP$/m, "the setup took");

  // Step 1: the service saw the drop policy and said where it is.
  const warning = await service.waitForLog((entry) => entry.level === "warn" && FORWARD_DROP_WARNING.test(entry.message));
  t.deepEqual(warning["conflicts"], [`${IPTABLES_FORWARD} (policy drop)`]);
  t.regex(warning.message, /fix what is listed, or run with the other --firewall-backend/);

  // Step 2: an instance with a guest. Its table is in place, iptables is untouched, and the other table's policy drops the guest's forwarded traffic.
  const network = await client.create("fn-a", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const guest = await attachGuest(topology.node, network);
  await startHttpServer(guest.guestNs, 3000, "hello from the guest");
  const world = await startHttpServer(topology.world, 9000, "hello from the world");
  t.deepEqual(await kernelDiff(topology.node, [network], POOL), []);
  t.is(await iptablesSave(topology.node), foreign, "iptables is exactly as the other tool left it");
  t.false((await httpGet(guest.guestNs, `http://${topology.worldIp}:9000/`, 1500)).ok);
  t.is(world.requests().length, 0, "dropped in iptables' FORWARD");

  // Step 3: the operator accepts the guests' links in that chain: ingress and egress both work.
  await topology.execNode("iptables", ["-I", "FORWARD", "1", "-i", "rik+", "-j", "ACCEPT"]);
  await topology.execNode("iptables", ["-I", "FORWARD", "2", "-o", "rik+", "-j", "ACCEPT"]);
  const accepted = await iptablesSave(topology.node);
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "hello from the guest" });
  t.deepEqual(await httpGet(guest.guestNs, `http://${topology.worldIp}:9000/`, 5000), { ok: true, status: 200, body: "hello from the world" });
  t.is(world.requests().length, 1);

  // Step 4: a restart changes nothing in iptables, and the traffic keeps flowing.
  await service.stop("SIGTERM");
  const again = await startService({ nodeNs: topology.node, pool: POOL, socketPath: service.socketPath });
  t.teardown(() => again.stop());
  t.is(await iptablesSave(topology.node), accepted);
  t.like(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, body: "hello from the guest" });

  // Step 5: after DESTROY the other tool's rules and policy, and the operator's accepts, are exactly as they were.
  const againClient = new WorkloadClient(again.address);
  t.teardown(() => againClient.close());
  await againClient.destroy("fn-a");
  const after = await iptablesSave(topology.node);
  t.is(after, accepted);
  t.regex(after, /^:FORWARD DROP$/m);
});

// `auto` chooses by itself, whatever the pass: registered in the nft pass only.
testOnBackend("nft", "with FORWARD policy DROP, --firewall-backend auto takes iptables, says why, and the guest's traffic flows", async (t) => {
  const { topology, service, client } = await foreignFirewalledNode(t, "auto");
  const defeated = service.logs().find((entry) => entry.message === "firewall backend defeated on this node, trying the next");
  t.like(defeated, { firewall_backend: "nft", conflicts: [`${IPTABLES_FORWARD} (policy drop)`] });
  t.like(service.logs().find((entry) => entry.message === "ready"), { firewall_backend: "iptables" });
  const network = await client.create("fn-auto", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const guest = await attachGuest(topology.node, network);
  await startHttpServer(guest.guestNs, 3000, "hello from the guest");
  const world = await startHttpServer(topology.world, 9000, "hello from the world");
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "hello from the guest" });
  t.deepEqual(await httpGet(guest.guestNs, `http://${topology.worldIp}:9000/`, 5000), { ok: true, status: 200, body: "hello from the world" });
  t.is(world.requests().length, 1);
});
