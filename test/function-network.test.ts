/**
 * The Function data path end to end: the real service in a node namespace, called over its
 * unix socket; kernel state read back with `ip -j` and, per firewall backend, `iptables-save`
 * or `nft list`; real packets from a world namespace to a guest attached to the TAP the way a
 * VMM attaches to it.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { attachGuest } from "./helpers/attach-guest.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { TEST_FIREWALL_BACKEND } from "./helpers/firewall-backend.js";
import { firewallState, iptablesSave, ipAddrs, ipLinks, ipv4ByLink, nftTable, NO_FIREWALL, rulesMatching, tapLinks } from "./helpers/kernel-state.js";
import { expectedNftChains, expectedNodeRules, kernelDiff } from "./helpers/kernel-diff.js";
import { Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { failureOf, functionDefinition, ResourceStatus, WorkloadClient } from "./helpers/workload-client.js";
import type { InstanceMetric, WorkerStatus } from "../src/gen/common/common_pb.js";

const POOL = "10.220.0.0/24";

/** A node namespace joined to a world namespace, with the real service running in the node. */
async function startNode(t: { teardown(fn: () => unknown): void }, options: { pool?: string } = {}) {
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node, pool: options.pool ?? POOL });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  return { topology, service, client };
}

function instanceOf(status: WorkerStatus): InstanceMetric | undefined {
  return status.status.case === "instance" ? status.status.value : undefined;
}


test("CREATE makes the TAP, its address and exactly the instance's rules; DESTROY removes them all", async (t) => {
  const { topology, client } = await startNode(t);
  const nodeRulesBefore = await firewallState(topology.node);

  // Step 1: CREATE a Function exposing node port 8080 to guest port 3000.
  const network = await client.create("fn-a", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  t.is(network.instanceId, "fn-a");
  t.is(network.kind, "Function");
  t.is(network.status, ResourceStatus.RUNNING);
  t.is(network.network.case, "function");
  const fn = network.network.value!;
  t.regex(fn.tapName, /^rik[a-z2-7]{12}$/);
  t.like(fn, {
    hostIp: "10.220.0.1",
    guestIp: "10.220.0.2",
    prefixLength: 30,
    mask: "255.255.255.252",
    mtu: 1500,
    bootArg: "ip=10.220.0.2::10.220.0.1:255.255.255.252::eth0:off",
  });
  t.regex(fn.guestMac, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, "locally administered unicast");
  t.deepEqual(
    fn.ports.map((p) => [p.protocol, p.hostPort, p.guestPort]),
    [[1, 8080, 3000]],
  );

  // Step 2: the kernel has a persistent TAP with a vnet header, up, carrying the host address.
  const [tap, ...otherTaps] = tapLinks(await ipLinks(topology.node));
  t.is(otherTaps.length, 0);
  t.is(tap?.ifname, fn.tapName);
  t.like(tap?.linkinfo?.info_data, { type: "tap", pi: false, vnet_hdr: true, persist: true });
  t.true(tap?.flags.includes("UP"));
  t.is(tap?.mtu, 1500);
  t.deepEqual(ipv4ByLink(await ipAddrs(topology.node)).get(fn.tapName), ["10.220.0.1/30"]);

  // Step 3: exactly the instance's DNAT (a rule tagged with its id, or a map element), and the node's rules once each.
  if (TEST_FIREWALL_BACKEND === "nft") {
    const table = await nftTable(topology.node);
    t.deepEqual(table?.elements, ["tcp . 8080 : 10.220.0.2 . 3000"]);
    const chains = Object.fromEntries(Object.entries(table?.chains ?? {}).map(([name, chain]) => [name, { hook: chain.hook, rules: chain.rules.map((rule) => rule.text) }]));
    t.deepEqual(chains, expectedNftChains());
  } else {
    const save = await iptablesSave(topology.node);
    t.deepEqual(rulesMatching(save, '"rik:fn-a"').sort(), [
      `-A RIKLET-P15 -p tcp -m tcp --dport 8080 -m comment --comment "rik:fn-a" -j DNAT --to-destination 10.220.0.2:3000`,
    ]);
    t.deepEqual(rulesMatching(save, "rik-network").sort(), expectedNodeRules(POOL).sort());
  }
  t.deepEqual(await kernelDiff(topology.node, [network], POOL), []);
  t.is(String((await topology.execNode("sysctl", ["-n", "net.ipv4.ip_forward"])).stdout).trim(), "1");
  // 127.0.0.1 DNATed to the guest keeps its loopback source up to POSTROUTING: the TAP must accept that route.
  t.is(String((await topology.execNode("sysctl", ["-n", `net.ipv4.conf.${fn.tapName}.route_localnet`])).stdout).trim(), "1");

  // Step 4: DESTROY leaves the node exactly as it was after setup.
  const destroyed = await client.destroy("fn-a");
  t.is(destroyed.status, ResourceStatus.TERMINATED);
  t.deepEqual(tapLinks(await ipLinks(topology.node)), []);
  t.deepEqual(await firewallState(topology.node), nodeRulesBefore);

  // Step 5: the /30 went back to the pool.
  const next = await client.create("fn-b", functionDefinition());
  t.is(next.network.value?.hostIp, "10.220.0.1");
});

test("a world client reaches the guest through the node port; the guest reaches the world; DESTROY cuts both", async (t) => {
  const { topology, client } = await startNode(t);
  const network = await client.create("web-1", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const guest = await attachGuest(topology.node, network);
  const server = await startHttpServer(guest.guestNs, 3000, "hello from the guest");

  // Ingress: world -> node:8080 -> DNAT -> guest:3000.
  const answer = await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000);
  t.deepEqual(answer, { ok: true, status: 200, body: "hello from the guest" });
  t.is(server.requests()[0]?.remoteAddress, topology.worldIp, "the client's address is preserved");

  // Egress: guest -> world, masqueraded behind the node's address.
  const world = await startHttpServer(topology.world, 9000, "hello from the world");
  const out = await httpGet(guest.guestNs, `http://${topology.worldIp}:9000/`, 5000);
  t.deepEqual(out, { ok: true, status: 200, body: "hello from the world" });
  t.is(world.requests()[0]?.remoteAddress, topology.nodeIp, "MASQUERADE hides the guest's address");

  // After DESTROY the same request gets no answer.
  await client.destroy("web-1");
  const after = await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 1500);
  t.false(after.ok);
  t.is(server.requests().length, 1);
});

test("repeated CREATE returns the same network, DESTROY of an unknown id succeeds, Get/List/Watch follow", async (t) => {
  const { client } = await startNode(t);
  const watch = client.watch();
  t.teardown(() => watch.cancel());
  const definition = functionDefinition({ exposure: { port: 8081, targetPort: 80 } });

  const first = await client.create("fn-1", definition);
  t.deepEqual(await client.create("fn-1", definition), first);
  t.deepEqual(await client.get("fn-1"), first);
  t.deepEqual(await client.list(), [first]);

  const conflict = await failureOf(client.create("fn-1", functionDefinition({ exposure: { port: 8082, targetPort: 80 } })));
  t.is(conflict.code, grpc.status.FAILED_PRECONDITION);
  t.regex(conflict.details, /already exists with another exposure, and its network cannot change; DESTROY it first/);

  const portTaken = await failureOf(client.create("fn-2", definition));
  t.is(portTaken.code, grpc.status.ALREADY_EXISTS);
  t.regex(portTaken.details, /host port 8081\/TCP is already exposed by instance "fn-1"/);

  t.is((await client.destroy("fn-1")).status, ResourceStatus.TERMINATED);
  t.is((await client.destroy("fn-1")).status, ResourceStatus.TERMINATED);
  t.is((await client.destroy("never-existed")).status, ResourceStatus.TERMINATED);
  t.is((await failureOf(client.get("fn-1"))).code, grpc.status.NOT_FOUND);
  t.deepEqual(await client.list(), []);

  // Watch saw fn-1 come and go (fn-2's refusal was decided before anything started).
  const events = await watch.next(4);
  t.deepEqual(
    events.map((e) => [e.identifier, e.status.case, instanceOf(e)?.instanceId, instanceOf(e)?.status]),
    [
      ["test-node", "instance", "fn-1", ResourceStatus.CREATING],
      ["test-node", "instance", "fn-1", ResourceStatus.RUNNING],
      ["test-node", "instance", "fn-1", ResourceStatus.DESTROYING],
      ["test-node", "instance", "fn-1", ResourceStatus.TERMINATED],
    ],
  );
  const metrics = JSON.parse(instanceOf(events[1]!)!.metrics) as { function?: { tapName?: string } };
  t.is(metrics.function?.tapName, first.network.value?.tapName);

  // A new watcher first gets one message per existing instance.
  await client.create("fn-3", definition);
  const late = client.watch();
  t.teardown(() => late.cancel());
  const [snapshot] = await late.next(1);
  t.is(instanceOf(snapshot!)?.instanceId, "fn-3");
  t.is(instanceOf(snapshot!)?.status, ResourceStatus.RUNNING);
});

test("a restart leaves networks in the kernel and sets the node up again without duplicating rules", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const first = await startService({ nodeNs: topology.node, pool: POOL });
  t.teardown(() => first.stop());
  const client = new WorkloadClient(first.address);
  const network = await client.create("keep-1", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  client.close();
  const guest = await attachGuest(topology.node, network);
  await startHttpServer(guest.guestNs, 3000, "still here");
  const before = await firewallState(topology.node);

  const exit = await first.stop("SIGTERM");
  t.is(exit.exitCode, 0);
  t.false(exit.forced);
  t.deepEqual(await firewallState(topology.node), before, "SIGTERM tears nothing down");
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "still here" });

  const second = await startService({ nodeNs: topology.node, pool: POOL, socketPath: first.socketPath });
  t.teardown(() => second.stop());
  t.deepEqual(await firewallState(topology.node), before, "a second setup adds nothing");
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "still here" });
});

test("the service refuses to start when the pool overlaps an address of the host", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const error = await t.throwsAsync(startService({ nodeNs: topology.node, pool: "198.18.0.0/16" }));
  t.regex(error?.message ?? "", /address pool 198\.18\.0\.0\/16 overlaps the host's address 198\.18\.0\.1\/24 on veth-world/);
  t.deepEqual(await firewallState(topology.node), NO_FIREWALL, "nothing was set up");
});
