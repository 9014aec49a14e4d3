/**
 * IPv6 from a hostile guest. Guests are IPv4 only: the host side of every TAP has IPv6 off
 * (disable_ipv6, no link-local address, accept_ra 0), and the firewall drops whatever arrives from
 * a guest TAP should those settings be turned back on: an ip6tables rule in raw PREROUTING with
 * the iptables backend, the `meta nfproto ipv6 drop` rule of raw_prerouting with the nft one. The guest here is a frame injector
 * attached to the TAP as a VMM attaches: it writes the frames a compromised guest kernel
 * could send. A control TAP made by hand in the same node namespace (`ctl0`, with the
 * kernel's IPv6 defaults, outside `rik+`) gets the same frames, to prove that each one does
 * reach the node when nothing stops it.
 */
import test from "ava";
import { TEST_FIREWALL_BACKEND } from "./helpers/firewall-backend.js";
import { startHttpServer } from "./helpers/guest-relay.js";
import { createTap } from "./helpers/hand-made-guest.js";
import { attachHostileGuest, type HostileGuest } from "./helpers/hostile-guest.js";
import {
  echoRequest,
  ICMPV6_ECHO_REPLY,
  ICMPV6_NEIGHBOR_ADVERTISEMENT,
  linkLocalOf,
  neighborSolicitation,
  NEXT_HEADER_TCP,
  routerAdvertisement,
  tcpSyn,
  udpDatagram,
} from "./helpers/ipv6-frames.js";
import { ipJson, NFT, nftTable, sparesOnce, tapIpv6, WITHOUT_IPV6, type IpAddr, type IpLink, type IpRoute, type NftRule } from "./helpers/kernel-state.js";
import { execIn, type TeardownHost } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { startNode } from "./helpers/start-node.js";
import { startUdpEcho } from "./helpers/udp-echo.js";
import { until } from "./helpers/until.js";
import { functionDefinition } from "./helpers/workload-client.js";

const NODE6 = "2001:db8:ff::1";
const WORLD6 = "2001:db8:ff::2";
const CONTROL_TAP = "ctl0";
const CONTROL_GUEST_MAC = "02:00:00:00:c0:02";
const IPV6_DROP_RULE = "-A PREROUTING -i rik+ -m comment --comment rik-network -j DROP";
const NFT_IPV6_DROP_RULE = 'iifname "rik*" meta nfproto ipv6 drop';
const NODE_UDP_PORT = 7777;
const NODE_TCP_PORT = 7778;

async function macOf(ns: string, link: string): Promise<string> {
  return (await ipJson<IpLink[]>(ns, ["link", "show", "dev", link]))[0]!.address!;
}

async function inet6Of(ns: string, link: string, usable = false): Promise<string[]> {
  const [entry] = await ipJson<IpAddr[]>(ns, ["addr", "show", "dev", link]);
  return (entry?.addr_info ?? []).filter((a) => a.family === "inet6" && !(usable && a["tentative"] === true)).map((a) => a.local);
}

async function ip6tablesRaw(ns: string): Promise<string[]> {
  return String((await execIn(ns, "ip6tables-save", ["-t", "raw"])).stdout).split("\n");
}

/** The nft backend's IPv6 drops in raw_prerouting. */
async function nftIpv6Drops(ns: string): Promise<NftRule[]> {
  return ((await nftTable(ns))?.chains["raw_prerouting"]?.rules ?? []).filter((rule) => rule.text === NFT_IPV6_DROP_RULE);
}

/**
 * How many IPv6 drops the node holds, of the backend in use (the ip6tables rule, or the nft
 * rule) and of the other one, which must have none: the drop seen is the one in use.
 */
async function ipv6Drops(ns: string): Promise<{ inUse: number; other: number }> {
  const iptables = (await ip6tablesRaw(ns)).filter((rule) => rule === IPV6_DROP_RULE).length;
  const nft = (await nftIpv6Drops(ns)).length;
  return TEST_FIREWALL_BACKEND === "nft" ? { inUse: nft, other: iptables } : { inUse: iptables, other: nft };
}

/** Deletes the IPv6 drop of the backend in use by hand. */
async function deleteIpv6Drop(ns: string): Promise<void> {
  if (TEST_FIREWALL_BACKEND === "nft") {
    const [rule] = await nftIpv6Drops(ns);
    await execIn(ns, NFT, ["delete", "rule", "inet", "rik-network", "raw_prerouting", "handle", String(rule!.handle)]);
  } else {
    await execIn(ns, "ip6tables", ["-t", "raw", "-D", "PREROUTING", "-i", "rik+", "-m", "comment", "--comment", "rik-network", "-j", "DROP"]);
  }
}

/**
 * The node as the tests need it: an IPv6 subnet between node and world (2001:db8:ff::/64),
 * a Function instance, the control TAP, and a hostile guest on each.
 */
async function ipv6Node(t: TeardownHost, extraArgs: readonly string[] = []) {
  const { topology, service, client } = await startNode(t, {
    service: { extraArgs },
    beforeService: async (topo) => {
      await topo.execNode("ip", ["-6", "addr", "add", `${NODE6}/64`, "dev", topo.nodeVeth, "nodad"]);
      await topo.execWorld("ip", ["-6", "addr", "add", `${WORLD6}/64`, "dev", topo.worldVeth, "nodad"]);
      await createTap(topo.node, CONTROL_TAP, "10.99.0.1/30");
    },
  });
  const created = await client.create("fn-v6", functionDefinition());
  const fn = created.network.value!;
  const tapMac = await macOf(topology.node, fn.tapName);
  const controlMac = await macOf(topology.node, CONTROL_TAP);
  const guest = await attachHostileGuest(topology.node, fn.tapName, fn.guestMac);
  const control = await attachHostileGuest(topology.node, CONTROL_TAP, CONTROL_GUEST_MAC);
  // The control TAP has carrier now (a queue is attached): wait for its link-local address to be usable.
  await until(`${CONTROL_TAP}'s link-local address`, async () =>
    (await inet6Of(topology.node, CONTROL_TAP, true)).includes(linkLocalOf(controlMac)) ? true : undefined,
  );
  return { topology, service, client, fn, tapMac, controlMac, guest, control };
}

/**
 * What each hostile guest sends to the node itself: a neighbour solicitation (which also tells
 * the node the guest's MAC), a multicast ping, a TCP SYN and a datagram to sockets on [::].
 */
async function probeNode(guest: HostileGuest, hostMac: string, payload: string, destination: string): Promise<void> {
  const source = linkLocalOf(guest.mac);
  await guest.send(neighborSolicitation({ sourceMac: guest.mac, source }, linkLocalOf(hostMac)));
  await guest.send(echoRequest({ sourceMac: guest.mac, destinationMac: "33:33:00:00:00:01", source, destination: "ff02::1" }, 7));
  await guest.send(tcpSyn({ sourceMac: guest.mac, destinationMac: hostMac, source, destination }, 40000, NODE_TCP_PORT));
  await guest.send(udpDatagram({ sourceMac: guest.mac, destinationMac: hostMac, source: "2001:db8:aa::2", destination }, 40000, NODE_UDP_PORT, payload));
}

test("IPv6: a guest's TAP has none, and a hostile guest finds no neighbour, reaches no node socket, sets no route, forwards nothing", async (t) => {
  const { topology, fn, tapMac, controlMac, guest, control } = await ipv6Node(t);

  // Step 1: the TAP has no IPv6 address and IPv6 is off on it; so on every spare; the firewall drops the rest.
  t.deepEqual(await tapIpv6(topology.node, fn.tapName), WITHOUT_IPV6);
  const spares = await sparesOnce(topology.node, 4);
  t.is(spares.length, 4, "the service keeps spare TAPs");
  for (const spare of spares) t.deepEqual(await tapIpv6(topology.node, spare.ifname), WITHOUT_IPV6, spare.ifname);
  t.deepEqual(await ipv6Drops(topology.node), { inUse: 1, other: 0 }, `one IPv6 drop, of the ${TEST_FIREWALL_BACKEND} backend only`);

  // Step 2: neighbour solicitation, ping ff02::1, a datagram to a node socket on [::]; the guest first, then the control.
  const nodeSocket = await startUdpEcho(topology.node, NODE_UDP_PORT, "node", { host: "::" });
  await startHttpServer(topology.node, NODE_TCP_PORT, "node", { host: "::" });
  await probeNode(guest, tapMac, "guest", NODE6);
  await probeNode(control, controlMac, "control", NODE6);
  await until("the node to answer the control guest", async () => {
    const received = control.received();
    const types = received.map((frame) => frame.icmpType);
    const synAck = received.some((frame) => frame.nextHeader === NEXT_HEADER_TCP && frame.source === NODE6);
    const seen = types.includes(ICMPV6_ECHO_REPLY) && types.includes(ICMPV6_NEIGHBOR_ADVERTISEMENT) && synAck && nodeSocket.datagrams().length > 0;
    return seen ? true : undefined;
  });
  t.deepEqual(guest.received(), [], "not one IPv6 frame from the node on the guest's TAP");
  t.deepEqual(nodeSocket.datagrams().map((d) => d.payload), ["control"]);

  // Step 3: router advertisements (default route and a prefix to autoconfigure): nothing changes on the node for the guest's.
  const beside = async () => ({
    routes: (await ipJson<IpRoute[]>(topology.node, ["-6", "route", "show", "table", "all"])).filter((route) => route.dev !== CONTROL_TAP),
    addresses: (await ipJson<IpAddr[]>(topology.node, ["-6", "addr", "show"])).filter((entry) => entry.ifname !== CONTROL_TAP),
  });
  const before = await beside();
  await guest.send(routerAdvertisement({ sourceMac: guest.mac, source: linkLocalOf(guest.mac) }, "2001:db8:66::"));
  await control.send(routerAdvertisement({ sourceMac: control.mac, source: linkLocalOf(control.mac) }, "2001:db8:77::"));
  await until("the control's advertisement to give the node a default route", async () => {
    const defaults = await ipJson<IpRoute[]>(topology.node, ["-6", "route", "show", "default"]);
    return defaults.some((route) => route.dev === CONTROL_TAP) ? true : undefined;
  });
  t.deepEqual(await beside(), before);

  // Step 4: forwarding on, a datagram to the world with a made-up source: only the control's arrives.
  await topology.execNode("sh", ["-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"]);
  const world = await startUdpEcho(topology.world, 9053, "world", { host: "::" });
  const spoofed = { source: "2001:db8:bad::1", destination: WORLD6 };
  await guest.send(udpDatagram({ ...spoofed, sourceMac: guest.mac, destinationMac: tapMac }, 40001, 9053, "guest"));
  await control.send(udpDatagram({ ...spoofed, sourceMac: control.mac, destinationMac: controlMac }, 40001, 9053, "control"));
  await until("the control's datagram to reach the world", async () => (world.datagrams().length > 0 ? true : undefined));
  t.deepEqual(world.datagrams().map((d) => d.payload), ["control"]);
});

test("IPv6 turned back on on a TAP is still dropped by the firewall, and the next reconcile turns it off and restores the drop rule", async (t) => {
  // No resync: the repair must come from the restart below, not race with the probe.
  const { topology, service, fn, tapMac, controlMac, guest, control } = await ipv6Node(t, ["--resync-interval", "0"]);

  // Step 1: drift by hand: IPv6 on for the TAP, which gets a link-local address.
  await topology.execNode("sh", ["-c", `echo 0 > /proc/sys/net/ipv6/conf/${fn.tapName}/addr_gen_mode && echo 0 > /proc/sys/net/ipv6/conf/${fn.tapName}/disable_ipv6`]);
  const tapLinkLocal = linkLocalOf(tapMac);
  await until("the TAP's link-local address", async () => ((await inet6Of(topology.node, fn.tapName)).includes(tapLinkLocal) ? true : undefined));

  // Step 2: a datagram to the TAP's own link-local address, on a [::] socket: the firewall drops it; the control's arrives.
  t.deepEqual(await ipv6Drops(topology.node), { inUse: 1, other: 0 }, `one IPv6 drop, of the ${TEST_FIREWALL_BACKEND} backend only`);
  const nodeSocket = await startUdpEcho(topology.node, NODE_UDP_PORT, "node", { host: "::" });
  const send = (from: HostileGuest, hostMac: string, destination: string, payload: string) =>
    from.send(udpDatagram({ sourceMac: from.mac, destinationMac: hostMac, source: linkLocalOf(from.mac), destination }, 40000, NODE_UDP_PORT, payload));
  await send(guest, tapMac, tapLinkLocal, "guest");
  await send(control, controlMac, linkLocalOf(controlMac), "control");
  await until("the control's datagram", async () => (nodeSocket.datagrams().length > 0 ? true : undefined));
  t.deepEqual(nodeSocket.datagrams().map((d) => d.payload), ["control"]);

  // Step 3: the drop rule deleted too; a restart reconciles both.
  await deleteIpv6Drop(topology.node);
  t.deepEqual(await ipv6Drops(topology.node), { inUse: 0, other: 0 });
  await service.stop();
  const restarted = await startService({
    nodeNs: topology.node,
    pool: "10.220.0.0/24",
    socketPath: service.socketPath,
    extraArgs: ["--resync-interval", "1"],
    readyTimeoutMs: 60_000,
  });
  t.teardown(() => restarted.stop());
  const line = await restarted.waitForLog((entry) => entry.message === "reconciled" && entry["trigger"] === "start");
  // The nft backend repairs its rule as any other: raw_prerouting flushed and refilled.
  t.like(line, { actions: { ipv6_repaired: 1, ...(TEST_FIREWALL_BACKEND === "nft" ? { chain_rewritten: 1 } : { ipv6_rule_repaired: 1 }) } });
  t.deepEqual(await tapIpv6(topology.node, fn.tapName), WITHOUT_IPV6, "turning IPv6 off removed the link-local address too");
  t.deepEqual(await ipv6Drops(topology.node), { inUse: 1, other: 0 });

  // Step 4: a spare's IPv6 turned back on (it would carry it into the next CREATE): the resync turns it off.
  const [spare] = await sparesOnce(topology.node, 4);
  await topology.execNode("sh", ["-c", `echo 0 > /proc/sys/net/ipv6/conf/${spare!.ifname}/disable_ipv6`]);
  const resync = await restarted.waitForLog((entry) => entry.message === "reconciled" && entry["trigger"] === "resync" && (entry["actions"] as Record<string, number>)["ipv6_repaired"] === 1);
  t.truthy(resync);
  t.deepEqual(await tapIpv6(topology.node, spare!.ifname), WITHOUT_IPV6, spare!.ifname);
});
