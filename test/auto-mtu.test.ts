/**
 * `--mtu auto` (the default): a TAP gets the MTU of the interface of the node's default route,
 * so that a guest never sends frames its uplink would have to fragment or drop. Here the node's
 * default route goes through the veth to the world, whose MTU is set to 1400 before the service
 * starts.
 */
import test from "ava";
import { attachGuest } from "./helpers/attach-guest.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { ipLinks, tapLinks } from "./helpers/kernel-state.js";
import type { Topology } from "./helpers/netns.js";
import { startNode } from "./helpers/start-node.js";
import { functionDefinition } from "./helpers/workload-client.js";

/** The node's uplink (both veth ends) at `mtu`, and the node's default route through it. */
async function uplinkWithMtu(topology: Topology, mtu: number): Promise<void> {
  await topology.execNode("ip", ["link", "set", topology.nodeVeth, "mtu", String(mtu)]);
  await topology.execWorld("ip", ["link", "set", topology.worldVeth, "mtu", String(mtu)]);
  await topology.execNode("ip", ["route", "add", "default", "via", topology.worldIp]);
}

async function tapMtu(topology: Topology): Promise<number[]> {
  return tapLinks(await ipLinks(topology.node)).map((link) => link.mtu);
}

test("without --mtu, the TAP and the reply take the MTU of the default route's interface (1400)", async (t) => {
  const { topology, client } = await startNode(t, { beforeService: (topology) => uplinkWithMtu(topology, 1400) });

  // Step 1: the reply and the kernel agree on 1400.
  const network = await client.create("mtu-1", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  t.is(network.network.value?.mtu, 1400);
  t.deepEqual(await tapMtu(topology), [1400]);

  // Step 2: a guest configured from the reply moves a body much larger than one frame both ways.
  const guest = await attachGuest(topology.node, network);
  const big = "x".repeat(256 * 1024);
  await startHttpServer(guest.guestNs, 3000, big);
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 10_000), { ok: true, status: 200, body: big });
  await startHttpServer(topology.world, 9000, big);
  t.deepEqual(await httpGet(guest.guestNs, `http://${topology.worldIp}:9000/`, 10_000), { ok: true, status: 200, body: big });
});

test("without a default route the MTU is 1500; an explicit --mtu wins over the default route's", async (t) => {
  // Step 1: no default route at all.
  const bare = await startNode(t);
  const plain = await bare.client.create("mtu-2", functionDefinition());
  t.is(plain.network.value?.mtu, 1500);
  t.deepEqual(await tapMtu(bare.topology), [1500]);

  // Step 2: a default route through a 1400 uplink, but --mtu 1300 given.
  const pinned = await startNode(t, { beforeService: (topology) => uplinkWithMtu(topology, 1400), service: { mtu: 1300 } });
  const network = await pinned.client.create("mtu-3", functionDefinition());
  t.is(network.network.value?.mtu, 1300);
  t.deepEqual(await tapMtu(pinned.topology), [1300]);

  // Step 3: "--mtu auto" spelled out is the default.
  const auto = await startNode(t, { beforeService: (topology) => uplinkWithMtu(topology, 1400), service: { extraArgs: ["--mtu", "auto"] } });
  const autoNetwork = await auto.client.create("mtu-4", functionDefinition());
  t.is(autoNetwork.network.value?.mtu, 1400);
  t.deepEqual(await tapMtu(auto.topology), [1400]);
});
