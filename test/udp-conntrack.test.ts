/**
 * Stale conntrack entries and UDP. A UDP client that was already sending to node:5353 before
 * the port was exposed has a conntrack entry that took no DNAT; as long as it keeps sending,
 * that entry never expires and its datagrams keep going to the node itself, never to the
 * guest. Likewise after a DESTROY, its entry keeps the DNAT to the old guest. So the service
 * must drop the entries of a port when it exposes it: this client is answered by the guest
 * after CREATE, and again by the new guest after DESTROY and a new CREATE.
 */
import test from "ava";
import { attachGuest } from "./helpers/attach-guest.js";
import { startNode } from "./helpers/start-node.js";
import { startUdpEcho } from "./helpers/udp-echo.js";
import { startUdpProbe } from "./helpers/udp-probe.js";
import { functionDefinition } from "./helpers/workload-client.js";

/** Long enough for a guest to be attached and answer; far below the 30 s an unreplied UDP entry lives while refreshed. */
const ANSWER_WAIT_MS = 15_000;

test("a UDP client sending since before CREATE is answered by the guest, and again after DESTROY and a new CREATE", async (t) => {
  const { topology, client } = await startNode(t);

  // Step 1: one socket (one source port) sends to node:5353 every 100 ms; nothing answers, but
  // the node now tracks the flow, without any DNAT.
  const probe = await startUdpProbe(topology.world, topology.nodeIp, 5353, { intervalMs: 100 });
  t.teardown(() => probe.stop());
  await probe.waitForSends(10);
  t.deepEqual(probe.answers(), []);

  // Step 2: CREATE exposes 5353/udp to a guest echo: the same flow now reaches the guest.
  const first = await client.create("dns-1", functionDefinition({ exposure: [{ port: 5353, targetPort: 5353, protocol: "UDP" }] }));
  const firstGuest = await attachGuest(topology.node, first);
  const firstEcho = await startUdpEcho(firstGuest.guestNs, 5353, "first guest");
  const answer = await probe.waitForAnswer((a) => a.body === "first guest", ANSWER_WAIT_MS);
  t.like(answer, { fromAddress: topology.nodeIp, fromPort: 5353 });
  t.deepEqual(new Set(firstEcho.datagrams().map((d) => `${d.remoteAddress}:${d.remotePort}`)), new Set([`${topology.worldIp}:${probe.localPort}`]));

  // Step 3: DESTROY, with the client still sending (its entry now DNATs to a guest that is gone).
  await client.destroy("dns-1");
  await firstGuest.stop();
  await probe.waitForSends(10);

  // Step 4: a new CREATE of the port, to a guest listening on ANOTHER port (5400): a left-over
  // entry to <guest>:5353 cannot reach it even if the new guest gets the same address.
  const second = await client.create("dns-2", functionDefinition({ exposure: [{ port: 5353, targetPort: 5400, protocol: "UDP" }] }));
  const secondGuest = await attachGuest(topology.node, second);
  await startUdpEcho(secondGuest.guestNs, 5400, "second guest");
  const again = await probe.waitForAnswer((a) => a.body === "second guest", ANSWER_WAIT_MS);
  t.like(again, { fromAddress: topology.nodeIp, fromPort: 5353 });
  t.true(again.afterSeq > answer.afterSeq);
});
