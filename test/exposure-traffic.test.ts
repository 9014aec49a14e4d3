/**
 * Exposures of issue #4 with real traffic: an array of TCP and UDP ports, reached from the
 * world through the node's address and from the node itself through 127.0.0.1, and two
 * instances side by side, each answering on its own ports and protocols only. The guests are
 * namespaces attached to the service's TAPs as a VMM attaches to them (guest-relay.ts).
 */
import test from "ava";
import { attachGuest } from "./helpers/attach-guest.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { isRefusal } from "./helpers/refusal.js";
import { startNode } from "./helpers/start-node.js";
import { startUdpEcho } from "./helpers/udp-echo.js";
import { udpRequest } from "./helpers/udp-request.js";
import { functionDefinition, type PortExposure } from "./helpers/workload-client.js";
import { Protocol, type InstanceNetwork } from "../src/gen/rik/network/v1/workload_network_pb.js";

/** node 8080/tcp -> guest 3000, node 5353/udp -> guest 5353. */
const TCP_AND_UDP: PortExposure[] = [
  { port: 8080, targetPort: 3000 },
  { port: 5353, targetPort: 5353, protocol: "UDP" },
];

/** `[protocol, hostPort, guestPort, hostIp]` of a reply's ports, sorted. */
function portsOf(network: InstanceNetwork): [Protocol, number, number, string][] {
  return network.network
    .value!.ports.map((p): [Protocol, number, number, string] => [p.protocol, p.hostPort, p.guestPort, p.hostIp])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

test("an array exposure answers the world over TCP on node:8080 and over UDP on node:5353", async (t) => {
  const { topology, client } = await startNode(t);

  // Step 1: CREATE with an array of two ports; the reply lists both, bound to every address.
  const network = await client.create("mixed-1", functionDefinition({ exposure: TCP_AND_UDP }));
  t.deepEqual(portsOf(network), [
    [Protocol.TCP, 8080, 3000, ""],
    [Protocol.UDP, 5353, 5353, ""],
  ]);

  // Step 2: a guest behind the TAP serving HTTP on 3000 and a UDP echo on 5353.
  const guest = await attachGuest(topology.node, network);
  const http = await startHttpServer(guest.guestNs, 3000, "tcp from the guest");
  const echo = await startUdpEcho(guest.guestNs, 5353, "udp from the guest");

  // Step 3: TCP from the world, with the client's address preserved.
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), {
    ok: true,
    status: 200,
    body: "tcp from the guest",
  });
  t.is(http.requests()[0]?.remoteAddress, topology.worldIp);

  // Step 4: UDP from the world: the answer comes back from the address and port asked (un-DNATed).
  const answer = await udpRequest(topology.world, topology.nodeIp, 5353, 5000, "question");
  t.deepEqual(answer, { ok: true, body: "udp from the guest", fromAddress: topology.nodeIp, fromPort: 5353 });
  t.like(echo.datagrams()[0], { remoteAddress: topology.worldIp, payload: "question" });

  // Step 5: after DESTROY neither port reaches the guest any more.
  await client.destroy("mixed-1");
  const seen = echo.datagrams().length;
  t.false((await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 1500)).ok);
  t.false((await udpRequest(topology.world, topology.nodeIp, 5353, 1500)).ok);
  t.is(http.requests().length, 1);
  t.is(echo.datagrams().length, seen);
});

test("a process on the node reaches the guest through 127.0.0.1 over TCP and UDP, and through the node's address", async (t) => {
  const { topology, client } = await startNode(t);
  const network = await client.create("local-1", functionDefinition({ exposure: TCP_AND_UDP }));
  const fn = network.network.value!;
  const guest = await attachGuest(topology.node, network);
  const http = await startHttpServer(guest.guestNs, 3000, "tcp from the guest");
  const echo = await startUdpEcho(guest.guestNs, 5353, "udp from the guest");

  // Step 1: 127.0.0.1:8080 (TCP) from the node namespace.
  t.deepEqual(await httpGet(topology.node, "http://127.0.0.1:8080/", 5000), { ok: true, status: 200, body: "tcp from the guest" });
  // A guest cannot answer 127.0.0.1 (a martian for it): the service must have rewritten the source
  // to an address the guest routes back, its gateway.
  t.is(http.requests()[0]?.remoteAddress, fn.hostIp);

  // Step 2: 127.0.0.1:5353 (UDP) from the node namespace, answered from what was asked.
  t.deepEqual(await udpRequest(topology.node, "127.0.0.1", 5353, 5000), {
    ok: true,
    body: "udp from the guest",
    fromAddress: "127.0.0.1",
    fromPort: 5353,
  });
  t.is(echo.datagrams()[0]?.remoteAddress, fn.hostIp);

  // Step 3: the node's own address works from the node too.
  t.deepEqual(await httpGet(topology.node, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "tcp from the guest" });
  t.like(await udpRequest(topology.node, topology.nodeIp, 5353, 5000), { ok: true, body: "udp from the guest" });
});

test("with --localhost false, 127.0.0.1 does not reach the guest but the node's address does", async (t) => {
  const { topology, client } = await startNode(t, { service: { extraArgs: ["--localhost", "false"] } });
  const network = await client.create("nolocal-1", functionDefinition({ exposure: TCP_AND_UDP }));
  const guest = await attachGuest(topology.node, network);
  const http = await startHttpServer(guest.guestNs, 3000, "tcp from the guest");
  const echo = await startUdpEcho(guest.guestNs, 5353, "udp from the guest");

  // Step 1: the exposure works (so what follows is about 127.0.0.1 only).
  t.like(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, body: "tcp from the guest" });
  t.like(await httpGet(topology.node, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, body: "tcp from the guest" });

  // Step 2: 127.0.0.1 gets no answer from the guest, over either protocol.
  const tcp = await httpGet(topology.node, "http://127.0.0.1:8080/", 2000);
  t.false(tcp.ok, JSON.stringify(tcp));
  const udp = await udpRequest(topology.node, "127.0.0.1", 5353, 2000);
  t.false(udp.ok, JSON.stringify(udp));
  t.is(http.requests().length, 2);
  t.is(echo.datagrams().length, 0);
});

test("two instances, one mixed TCP+UDP: each port answers from its own guest, and only with its declared protocol", async (t) => {
  const { topology, client } = await startNode(t);

  // Step 1: A exposes 8080/tcp and 5353/udp (an array); B exposes 8081/tcp (RIK's single object).
  const a = await client.create("fn-a", functionDefinition({ exposure: TCP_AND_UDP }));
  const b = await client.create("fn-b", functionDefinition({ exposure: { port: 8081, targetPort: 3000 } }));
  t.deepEqual(portsOf(b), [[Protocol.TCP, 8081, 3000, ""]]);

  // Step 2: both guests listen on BOTH protocols of every port they use, so that a rule
  // forwarding the wrong protocol (or the other instance's port) would be answered.
  const guestA = await attachGuest(topology.node, a);
  const guestB = await attachGuest(topology.node, b);
  await startHttpServer(guestA.guestNs, 3000, "a/tcp");
  await startUdpEcho(guestA.guestNs, 5353, "a/udp");
  const aUdp3000 = await startUdpEcho(guestA.guestNs, 3000, "a/udp on 3000");
  const aTcp5353 = await startHttpServer(guestA.guestNs, 5353, "a/tcp on 5353");
  await startHttpServer(guestB.guestNs, 3000, "b/tcp");
  const bUdp3000 = await startUdpEcho(guestB.guestNs, 3000, "b/udp on 3000");
  const bUdp5353 = await startUdpEcho(guestB.guestNs, 5353, "b/udp");

  // Step 3: each declared port answers from its own guest.
  const url = (port: number) => `http://${topology.nodeIp}:${port}/`;
  t.like(await httpGet(topology.world, url(8080), 5000), { ok: true, body: "a/tcp" });
  t.like(await httpGet(topology.world, url(8081), 5000), { ok: true, body: "b/tcp" });
  t.like(await udpRequest(topology.world, topology.nodeIp, 5353, 5000), { ok: true, body: "a/udp" });

  // Step 4: the other protocol of each port reaches nobody.
  const notForwarded = {
    "8080/udp": await udpRequest(topology.world, topology.nodeIp, 8080, 1500),
    "8081/udp": await udpRequest(topology.world, topology.nodeIp, 8081, 1500),
    "5353/tcp": await httpGet(topology.world, url(5353), 1500),
  };
  for (const [what, result] of Object.entries(notForwarded)) t.false(result.ok, `${what}: ${JSON.stringify(result)}`);
  t.is(aUdp3000.datagrams().length, 0);
  t.is(aTcp5353.requests().length, 0);
  t.is(bUdp3000.datagrams().length, 0);
  t.is(bUdp5353.datagrams().length, 0);

  // Step 5: DESTROY A: its ports stop answering, B's goes on.
  await client.destroy("fn-a");
  t.like(await httpGet(topology.world, url(8081), 5000), { ok: true, body: "b/tcp" });
  t.false((await httpGet(topology.world, url(8080), 1500)).ok);
  const udpAfter = await udpRequest(topology.world, topology.nodeIp, 5353, 1500);
  t.false(udpAfter.ok, JSON.stringify(udpAfter));
  t.is(bUdp5353.datagrams().length, 0);
});

test("a port the node does not expose is refused by the node itself, not silently dropped", async (t) => {
  const { topology, client } = await startNode(t);
  await client.create("fn-a", functionDefinition({ exposure: TCP_AND_UDP }));
  // Nothing listens on 8090 on the node and nothing exposes it: the node's own RST / ICMP.
  const tcp = await httpGet(topology.world, `http://${topology.nodeIp}:8090/`, 3000);
  t.true(isRefusal(tcp), JSON.stringify(tcp));
  const udp = await udpRequest(topology.world, topology.nodeIp, 8090, 3000);
  t.true(isRefusal(udp), JSON.stringify(udp));
});
