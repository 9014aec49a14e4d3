/**
 * Self-tests of the traffic helpers the exposure tests rely on (udp-echo, udp-request,
 * udp-probe, tcp-connect, refusal, loopback-route), against a guest behind a TAP made by hand, so that they
 * do not depend on the service. In particular: a refusal (RST, ICMP unreachable) and a silent
 * drop must come out different, or the isolation tests could not tell "fails fast" from
 * "hangs". Needs root; touches only namespaces it creates.
 */
import test from "ava";
import { startHttpServer } from "./helpers/guest-relay.js";
import { handMadeGuest } from "./helpers/hand-made-guest.js";
import { routeLoopbackViaGateway } from "./helpers/loopback-route.js";
import { setSysctl, Topology } from "./helpers/netns.js";
import { isRefusal } from "./helpers/refusal.js";
import { tcpConnect } from "./helpers/tcp-connect.js";
import { startUdpEcho } from "./helpers/udp-echo.js";
import { startUdpProbe } from "./helpers/udp-probe.js";
import { udpRequest } from "./helpers/udp-request.js";

/** A node with a hand-made TAP (10.220.0.1/30) and a guest (10.220.0.2) behind it. */
async function nodeWithGuest(t: { teardown(fn: () => unknown): void }) {
  const topology = await Topology.create({ teardown: t });
  const guest = await handMadeGuest(topology.node, "tapx");
  return { topology, guest };
}

test("udpRequest gets the echo's answer; a closed UDP port is a refusal, a dropped one a timeout", async (t) => {
  const { topology, guest } = await nodeWithGuest(t);
  const echo = await startUdpEcho(guest.guestNs, 5353, "udp from the guest");

  // Step 1: an answer, from the address asked, and the echo saw the node's TAP address.
  const answer = await udpRequest(topology.node, "10.220.0.2", 5353, 5000, "hello");
  t.like(answer, { ok: true, body: "udp from the guest", fromAddress: "10.220.0.2", fromPort: 5353 });
  t.like(echo.datagrams()[0], { remoteAddress: "10.220.0.1", payload: "hello" });

  // Step 2: nothing bound on 5354: the guest's ICMP port unreachable is reported at once.
  const closed = await udpRequest(topology.node, "10.220.0.2", 5354, 5000);
  t.like(closed, { ok: false, code: "ECONNREFUSED" });
  t.true(isRefusal(closed));

  // Step 3: a bound port behind a DROP: no answer at all, which is not a refusal.
  await startUdpEcho(guest.guestNs, 5355, "never seen");
  await guest.exec("iptables", "-A", "INPUT", "-p", "udp", "--dport", "5355", "-j", "DROP");
  const dropped = await udpRequest(topology.node, "10.220.0.2", 5355, 1500);
  t.like(dropped, { ok: false, code: "ETIMEDOUT" });
  t.false(isRefusal(dropped));
});

test("tcpConnect tells a connection, a RST, an ICMP admin-prohibited and a silent drop apart", async (t) => {
  const { topology, guest } = await nodeWithGuest(t);
  await startHttpServer(guest.guestNs, 3000, "up");
  await startHttpServer(guest.guestNs, 3001, "behind REJECT");
  await startHttpServer(guest.guestNs, 3002, "behind DROP");
  await guest.exec("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "3001", "-j", "REJECT", "--reject-with", "icmp-admin-prohibited");
  await guest.exec("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "3002", "-j", "DROP");

  t.deepEqual(await tcpConnect(topology.node, "10.220.0.2", 3000), { ok: true });
  t.false(isRefusal({ ok: true }));

  const reset = await tcpConnect(topology.node, "10.220.0.2", 3999);
  t.like(reset, { ok: false, code: "ECONNREFUSED" });
  t.true(isRefusal(reset));

  const prohibited = await tcpConnect(topology.node, "10.220.0.2", 3001);
  t.like(prohibited, { ok: false, code: "EHOSTUNREACH" });
  t.true(isRefusal(prohibited));

  const dropped = await tcpConnect(topology.node, "10.220.0.2", 3002, 1500);
  t.like(dropped, { ok: false, code: "ETIMEDOUT" });
  t.false(isRefusal(dropped));
});

test("a UDP probe keeps one source port and records every answer", async (t) => {
  const { topology, guest } = await nodeWithGuest(t);

  // Step 1: nobody listens yet: datagrams go out, nothing comes back, and the probe lives on.
  const probe = await startUdpProbe(topology.node, "10.220.0.2", 5353, { intervalMs: 100 });
  t.teardown(() => probe.stop());
  await probe.waitForSends(5);
  t.deepEqual(probe.answers(), []);

  // Step 2: once the echo is there, its answers arrive, all to the same source port.
  const echo = await startUdpEcho(guest.guestNs, 5353, "late echo");
  const answer = await probe.waitForAnswer((a) => a.body === "late echo", 10_000);
  t.like(answer, { fromAddress: "10.220.0.2", fromPort: 5353 });
  t.true(answer.afterSeq > 5);
  await probe.waitForSends(3);
  t.true(echo.datagrams().length >= 1);
  t.deepEqual(new Set(echo.datagrams().map((d) => d.remotePort)), new Set([probe.localPort]));
});

test("a guest routing 127.0.0.1 to its gateway reaches the node's loopback-only UDP socket once the node's side has route_localnet", async (t) => {
  const { topology, guest } = await nodeWithGuest(t);
  const loopbackOnly = await startUdpEcho(topology.node, 7000, "loopback only", { host: "127.0.0.1" });
  await routeLoopbackViaGateway(guest.guestNs, "10.220.0.1");

  // Step 1: the node drops a loopback destination arriving on a NIC by default (martian).
  await udpRequest(guest.guestNs, "127.0.0.1", 7000, 1500);
  t.deepEqual(loopbackOnly.datagrams(), []);

  // Step 2: with route_localnet on the TAP, the datagram gets in (the reply cannot get out:
  // a loopback source never leaves by a NIC, so the client sees no answer either way).
  await setSysctl(topology.node, "net.ipv4.conf.tapx.route_localnet", 1);
  await udpRequest(guest.guestNs, "127.0.0.1", 7000, 1500, "from the guest");
  t.like(loopbackOnly.datagrams()[0], { remoteAddress: "10.220.0.2", payload: "from the guest" });
});
