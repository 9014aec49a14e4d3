/**
 * What a guest can reach, with real traffic from inside guest namespaces:
 * - hairpin: its own exposed port and another function's, through the node's address and
 *   through its own gateway;
 * - isolation: another guest's address directly, and the node's own services (metrics, the
 *   gRPC listener) are refused at once (RST / ICMP unreachable: a refusal, never a timeout);
 * - egress to the world keeps working, from the guest's own address only: a guest posing as
 *   another guest, or as an address of the world, gets nothing through;
 * - a guest that sends to 127.0.0.1 through its gateway does not reach the node's loopback.
 */
import test from "ava";
import { attachGuest } from "./helpers/attach-guest.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { routeLoopbackViaGateway } from "./helpers/loopback-route.js";
import { isRefusal } from "./helpers/refusal.js";
import { execIn, type TeardownHost } from "./helpers/netns.js";
import { startNode, type NodeOptions } from "./helpers/start-node.js";
import { tcpConnect } from "./helpers/tcp-connect.js";
import { startUdpEcho } from "./helpers/udp-echo.js";
import { udpRequest } from "./helpers/udp-request.js";
import { functionDefinition } from "./helpers/workload-client.js";

const METRICS_PORT = 9464;
const GRPC_PORT = 7100;

/** A exposes 8080/tcp; B exposes 8081/tcp and 5353/udp; each guest answers with its name. */
async function twoFunctions(t: TeardownHost, options: NodeOptions = {}) {
  const { topology, client } = await startNode(t, options);
  const a = await client.create("fn-a", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const b = await client.create(
    "fn-b",
    functionDefinition({ exposure: [{ port: 8081, targetPort: 3000 }, { port: 5353, targetPort: 5353, protocol: "UDP" }] }),
  );
  const guestA = await attachGuest(topology.node, a);
  const guestB = await attachGuest(topology.node, b);
  await startHttpServer(guestA.guestNs, 3000, "a");
  const httpB = await startHttpServer(guestB.guestNs, 3000, "b");
  const echoB = await startUdpEcho(guestB.guestNs, 5353, "b/udp");
  return { topology, client, a, b, guestA, guestB, httpB, echoB };
}

test("hairpin: a guest reaches its own exposed port and another function's through the node's address and its gateway", async (t) => {
  // Step 1: A exposes 8080/tcp; B exposes 8081/tcp and 5353/udp. Each guest says who it is.
  const { topology, a, b, guestA, guestB } = await twoFunctions(t);
  const gatewayA = a.network.value!.hostIp;
  const gatewayB = b.network.value!.hostIp;

  // Step 2: from A, through the node's address: its own port, then B's.
  t.deepEqual(await httpGet(guestA.guestNs, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "a" });
  t.deepEqual(await httpGet(guestA.guestNs, `http://${topology.nodeIp}:8081/`, 5000), { ok: true, status: 200, body: "b" });
  t.like(await udpRequest(guestA.guestNs, topology.nodeIp, 5353, 5000), { ok: true, body: "b/udp", fromAddress: topology.nodeIp });

  // Step 3: from A, through its own gateway (the host side of its /30).
  t.deepEqual(await httpGet(guestA.guestNs, `http://${gatewayA}:8080/`, 5000), { ok: true, status: 200, body: "a" });
  t.deepEqual(await httpGet(guestA.guestNs, `http://${gatewayA}:8081/`, 5000), { ok: true, status: 200, body: "b" });
  t.like(await udpRequest(guestA.guestNs, gatewayA, 5353, 5000), { ok: true, body: "b/udp", fromAddress: gatewayA });

  // Step 4: the other way round, from B.
  t.deepEqual(await httpGet(guestB.guestNs, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, status: 200, body: "a" });
  t.deepEqual(await httpGet(guestB.guestNs, `http://${gatewayB}:8081/`, 5000), { ok: true, status: 200, body: "b" });
});

test("isolation: another guest's address and the node's own services are refused at once; egress works", async (t) => {
  // Metrics and gRPC on every address of the node, so that only a firewall can keep guests off them.
  const { topology, a, b, guestA, httpB, echoB } = await twoFunctions(t, {
    service: { extraArgs: ["--metrics-listen", `0.0.0.0:${METRICS_PORT}`, "--listen", `0.0.0.0:${GRPC_PORT}`, "--insecure-tcp"] },
  });
  const [fnA, fnB] = [a.network.value!, b.network.value!];

  // Step 1 (controls): B serves, and the service's listeners answer the world on the node's address.
  t.like(await httpGet(topology.world, `http://${topology.nodeIp}:8081/`, 5000), { ok: true, body: "b" });
  t.like(await udpRequest(topology.world, topology.nodeIp, 5353, 5000), { ok: true, body: "b/udp" });
  t.like(await httpGet(topology.world, `http://${topology.nodeIp}:${METRICS_PORT}/metrics`, 5000), { ok: true, status: 200 });
  t.deepEqual(await tcpConnect(topology.world, topology.nodeIp, GRPC_PORT), { ok: true });
  const [requestsB, datagramsB] = [httpB.requests().length, echoB.datagrams().length];

  // Step 2: A straight to B's address (not through an exposed node port): refused, TCP and UDP.
  const direct = {
    tcp: await tcpConnect(guestA.guestNs, fnB.guestIp, 3000),
    udp: await udpRequest(guestA.guestNs, fnB.guestIp, 5353, 3000),
  };
  for (const [what, result] of Object.entries(direct)) t.true(isRefusal(result), `A -> B ${what}: ${JSON.stringify(result)}`);
  t.is(httpB.requests().length, requestsB);
  t.is(echoB.datagrams().length, datagramsB);

  // Step 3: A to the service's metrics and gRPC ports, on every local address it can name.
  for (const address of [fnA.hostIp, topology.nodeIp, fnB.hostIp]) {
    for (const port of [METRICS_PORT, GRPC_PORT]) {
      const result = await tcpConnect(guestA.guestNs, address, port);
      t.true(isRefusal(result), `A -> ${address}:${port}: ${JSON.stringify(result)}`);
    }
  }

  // Step 4: the legitimate path to B, through its exposed port, is still open.
  t.like(await httpGet(guestA.guestNs, `http://${topology.nodeIp}:8081/`, 5000), { ok: true, body: "b" });

  // Step 5: egress to the world, masqueraded behind the node's address.
  const world = await startHttpServer(topology.world, 9000, "hello from the world");
  t.deepEqual(await httpGet(guestA.guestNs, `http://${topology.worldIp}:9000/`, 5000), {
    ok: true,
    status: 200,
    body: "hello from the world",
  });
  t.is(world.requests()[0]?.remoteAddress, topology.nodeIp);
});

test("a guest routing 127.0.0.1 to its gateway does not reach the node's loopback-only sockets", async (t) => {
  const { topology, client } = await startNode(t);
  // localhost exposure is on (the default), so the TAP accepts loopback destinations at the
  // routing level (route_localnet): only the node's filtering keeps them out.
  const network = await client.create("fn-a", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const guest = await attachGuest(topology.node, network);
  const loopbackOnly = await startUdpEcho(topology.node, 7000, "loopback only", { host: "127.0.0.1" });

  // Step 1 (control): the node's loopback service works for the node itself.
  t.like(await udpRequest(topology.node, "127.0.0.1", 7000, 5000), { ok: true, body: "loopback only" });
  const seen = loopbackOnly.datagrams().length;

  // Step 2: the guest's datagrams to 127.0.0.1 never get to it (they take ~1.5 s of resends).
  await routeLoopbackViaGateway(guest.guestNs, network.network.value!.hostIp);
  await udpRequest(guest.guestNs, "127.0.0.1", 7000, 1500, "from the guest");
  t.is(loopbackOnly.datagrams().length, seen);
});

test("a guest cannot send from an address that is not its own: not another guest's, the world's, its gateway's or its /30's broadcast", async (t) => {
  const { topology, a, b, guestA } = await twoFunctions(t);
  const [fnA, fnB] = [a.network.value!, b.network.value!];
  const world = await startUdpEcho(topology.world, 9053, "world");

  // Step 1 (control): from its own address, A's datagrams reach the world, masqueraded.
  t.like(await udpRequest(guestA.guestNs, topology.worldIp, 9053, 5000), { ok: true, body: "world" });
  t.deepEqual(world.datagrams().map((d) => d.remoteAddress), [topology.nodeIp]);

  // Step 2: A takes B's address, one of the world's, its gateway's, then its own /30's broadcast
  // address (which routes back through A's TAP, but not as unicast), as the source of its route to the world.
  for (const forged of [fnB.guestIp, "198.51.100.7", fnA.hostIp]) {
    await execIn(guestA.guestNs, "ip", ["addr", "add", `${forged}/32`, "dev", "eth0"]);
    await execIn(guestA.guestNs, "ip", ["route", "replace", `${topology.worldIp}/32`, "via", fnA.hostIp, "dev", "eth0", "src", forged]);
    const forgedResult = await udpRequest(guestA.guestNs, topology.worldIp, 9053, 1500, `from ${forged}`);
    t.false(forgedResult.ok, `from ${forged}: ${JSON.stringify(forgedResult)}`);
    await execIn(guestA.guestNs, "ip", ["route", "del", `${topology.worldIp}/32`]);
    await execIn(guestA.guestNs, "ip", ["addr", "del", `${forged}/32`, "dev", "eth0"]);
  }
  // The broadcast address cannot be a route's source while A holds its /30: A takes it alone,
  // with the gateway's MAC set by hand (no ARP from a broadcast source is answered).
  const broadcast = fnA.guestIp.replace(/\d+$/, (last) => String(Number(last) + 1));
  const { stdout: tapMac } = await execIn(topology.node, "cat", [`/sys/class/net/${fnA.tapName}/address`]);
  const guest = (args: string[]) => execIn(guestA.guestNs, "ip", args);
  await guest(["addr", "del", `${fnA.guestIp}/${fnA.prefixLength}`, "dev", "eth0"]);
  await guest(["addr", "add", `${broadcast}/32`, "dev", "eth0"]);
  await guest(["route", "add", `${fnA.hostIp}/32`, "dev", "eth0"]);
  await guest(["neigh", "replace", fnA.hostIp, "lladdr", String(tapMac).trim(), "dev", "eth0", "nud", "permanent"]);
  await guest(["route", "replace", `${topology.worldIp}/32`, "via", fnA.hostIp, "dev", "eth0", "src", broadcast]);
  const fromBroadcast = await udpRequest(guestA.guestNs, topology.worldIp, 9053, 1500, `from ${broadcast}`);
  t.false(fromBroadcast.ok, `from ${broadcast}: ${JSON.stringify(fromBroadcast)}`);
  await guest(["route", "del", `${topology.worldIp}/32`]);
  await guest(["addr", "del", `${broadcast}/32`, "dev", "eth0"]);
  await guest(["addr", "add", `${fnA.guestIp}/${fnA.prefixLength}`, "dev", "eth0"]);
  await guest(["route", "replace", "default", "via", fnA.hostIp, "dev", "eth0"]);
  t.deepEqual(world.datagrams().map((d) => d.payload), ["ping"], "only the datagram from A's own address arrived");

  // Step 3: with its own address back, A gets through again.
  t.like(await udpRequest(guestA.guestNs, topology.worldIp, 9053, 5000, "again"), { ok: true, body: "world" });
});
