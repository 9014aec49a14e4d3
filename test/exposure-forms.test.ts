/**
 * The forms `spec.function.exposure` takes in issue #4, beyond the plain TCP port: a `hostIP`
 * binding the exposure to one address of the node (checked with traffic), protocols written in
 * any case, one port number over both protocols, and the definitions that must be refused
 * before the node is touched.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { attachGuest } from "./helpers/attach-guest.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { hostState } from "./helpers/host-state.js";
import { startNode } from "./helpers/start-node.js";
import { startUdpEcho } from "./helpers/udp-echo.js";
import { udpRequest } from "./helpers/udp-request.js";
import { failureOf, functionDefinition, type PortExposure } from "./helpers/workload-client.js";
import { Protocol } from "../src/gen/rik/network/v1/workload_network_pb.js";

/** A second address of the node, on its uplink, beside topology.nodeIp (198.18.0.1). */
const SECOND_NODE_IP = "198.18.0.3";

test("hostIP exposes the port on that address of the node only", async (t) => {
  const { topology, client } = await startNode(t, {
    beforeService: (topology) => topology.execNode("ip", ["addr", "add", `${SECOND_NODE_IP}/24`, "dev", topology.nodeVeth]),
  });

  // Step 1: the reply carries the address the port is bound to.
  const network = await client.create("bound-1", functionDefinition({ exposure: [{ port: 8080, targetPort: 3000, hostIP: SECOND_NODE_IP }] }));
  t.deepEqual(
    network.network.value!.ports.map((p) => [p.protocol, p.hostPort, p.guestPort, p.hostIp]),
    [[Protocol.TCP, 8080, 3000, SECOND_NODE_IP]],
  );
  const guest = await attachGuest(topology.node, network);
  const http = await startHttpServer(guest.guestNs, 3000, "bound");

  // Step 2: that address answers; the node's other addresses do not forward the port.
  t.like(await httpGet(topology.world, `http://${SECOND_NODE_IP}:8080/`, 5000), { ok: true, body: "bound" });
  const other = await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 1500);
  t.false(other.ok, JSON.stringify(other));
  const loopback = await httpGet(topology.node, "http://127.0.0.1:8080/", 1500);
  t.false(loopback.ok, JSON.stringify(loopback));
  t.is(http.requests().length, 1);
});

test("protocols in any case, and one port number over TCP and UDP, each to its own guest port", async (t) => {
  const { topology, client } = await startNode(t);
  const exposure: PortExposure[] = [
    { port: 8053, targetPort: 3000, protocol: "tcp" },
    { port: 8053, targetPort: 5353, protocol: "udp" },
  ];
  const network = await client.create("both-1", functionDefinition({ exposure }));
  t.deepEqual(
    network.network.value!.ports.map((p) => [p.protocol, p.hostPort, p.guestPort]).sort(),
    [
      [Protocol.TCP, 8053, 3000],
      [Protocol.UDP, 8053, 5353],
    ],
  );
  const guest = await attachGuest(topology.node, network);
  await startHttpServer(guest.guestNs, 3000, "over tcp");
  await startUdpEcho(guest.guestNs, 5353, "over udp");
  t.like(await httpGet(topology.world, `http://${topology.nodeIp}:8053/`, 5000), { ok: true, body: "over tcp" });
  t.like(await udpRequest(topology.world, topology.nodeIp, 8053, 5000), { ok: true, body: "over udp" });
});

test("bad exposures are refused with their code and leave the node as it was", async (t) => {
  const { topology, client } = await startNode(t);
  const { INVALID_ARGUMENT, FAILED_PRECONDITION } = grpc.status;
  const cases: { name: string; exposure: PortExposure[]; code: grpc.status }[] = [
    { name: "the same TCP port twice", exposure: [{ port: 8080, targetPort: 1 }, { port: 8080, targetPort: 2 }], code: INVALID_ARGUMENT },
    {
      name: "the same UDP port twice, in two spellings",
      exposure: [{ port: 5353, targetPort: 1, protocol: "UDP" }, { port: 5353, targetPort: 2, protocol: "udp" }],
      code: INVALID_ARGUMENT,
    },
    { name: "an unknown protocol", exposure: [{ port: 8080, targetPort: 1, protocol: "SCTP" }], code: INVALID_ARGUMENT },
    { name: "a hostIP that is not an address", exposure: [{ port: 8080, targetPort: 1, hostIP: "node-1" }], code: INVALID_ARGUMENT },
    { name: "a hostIP the node does not have", exposure: [{ port: 8080, targetPort: 1, hostIP: "198.18.0.99" }], code: FAILED_PRECONDITION },
  ];
  for (const bad of cases) {
    const before = await hostState(topology);
    const failure = await failureOf(client.create("bad-1", functionDefinition({ exposure: bad.exposure })));
    t.is(failure.code, bad.code, `${bad.name}: ${grpc.status[failure.code]} ${failure.details}`);
    t.deepEqual(await hostState(topology), before, `${bad.name} changed the node`);
  }
  t.deepEqual(await client.list(), []);
});
