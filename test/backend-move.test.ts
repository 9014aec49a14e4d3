/**
 * Moving a node from one firewall backend to the other is a restart on the other backend,
 * whose start reconcile makes the new backend's rules and then removes the old one's, so
 * that live guests keep their traffic throughout. Each pass moves the node to the backend it
 * tests: from iptables in the nft pass, from nft in the iptables pass.
 */
import test from "ava";
import type { InstanceNetwork } from "../src/gen/rik/network/v1/workload_network_pb.js";
import { TEST_FIREWALL_BACKEND } from "./helpers/firewall-backend.js";
import { fleetGuestBody, startGuestFleet } from "./helpers/guest-fleet.js";
import { kernelDiff } from "./helpers/kernel-diff.js";
import { delay, Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { failures, httpGetAll, startTrafficProbe } from "./helpers/traffic-probe.js";
import { functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/24";
const INSTANCES = 4;
const FROM = TEST_FIREWALL_BACKEND === "nft" ? "iptables" : "nft";

test(`a restart on the other backend (${FROM} to ${TEST_FIREWALL_BACKEND}) removes what the old one made, and guests keep answering throughout`, async (t) => {
  const topology = await Topology.create({ teardown: t });
  const first = await startService({ nodeNs: topology.node, pool: POOL, firewallBackend: FROM, logLevel: "info" });
  t.teardown(() => first.stop());

  // Step 1: exposed instances on the old backend, a guest behind each, answering the world.
  const client = new WorkloadClient(first.address);
  const networks: InstanceNetwork[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    networks.push(await client.create(`moved-${i}`, functionDefinition({ exposure: { port: 8100 + i, targetPort: 3000 } })));
  }
  client.close();
  await startGuestFleet({ nodeNs: topology.node, guests: networks.map((n) => n.network.value!), port: 3000 });
  const targets = networks.map((n) => ({ url: `http://${topology.nodeIp}:${n.network.value!.ports[0]!.hostPort}/`, expectBody: fleetGuestBody(n.network.value!.guestIp) }));
  t.deepEqual(failures(await httpGetAll(topology.world, targets)), [], `every guest answers on ${FROM}`);

  // Step 2: world traffic through the move.
  const probe = await startTrafficProbe({ ns: topology.world, targets, intervalMs: 5, timeoutMs: 2000 });
  t.teardown(() => probe.stop());
  await delay(500);
  await first.stop("SIGTERM");
  const second = await startService({ nodeNs: topology.node, pool: POOL, socketPath: first.socketPath, logLevel: "info" });
  t.teardown(() => second.stop());

  // Step 3: the new backend's state is exactly the instances', and nothing of the old one is left (kernelDiff checks both).
  const moved = await second.waitForLog((entry) => entry.message.startsWith("removed what the other firewall backend left"));
  t.is(moved["firewall_backend"], TEST_FIREWALL_BACKEND);
  t.deepEqual(Object.keys(moved["removed"] as object), [FROM]);
  t.deepEqual(await kernelDiff(topology.node, networks, POOL), []);
  const lister = new WorkloadClient(second.address);
  t.teardown(() => lister.close());
  t.deepEqual((await lister.list()).map((n) => n.instanceId).sort(), networks.map((n) => n.instanceId).sort());

  // Step 4: not one request failed, before, during or after the move, and every guest still answers.
  await delay(500);
  const records = await probe.stop();
  t.deepEqual(failures(records), [], "no request failed through the move");
  t.true(records.length > 0);
  t.deepEqual(failures(await httpGetAll(topology.world, targets)), [], `every guest answers on ${TEST_FIREWALL_BACKEND}`);
});
