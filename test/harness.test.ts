/**
 * Self-tests of the integration-test harness (test/helpers). Needs root; touches only
 * namespaces it creates.
 */
import { fileURLToPath } from "node:url";
import test from "ava";
import { execa } from "execa";
import { httpGet, startGuest, startHttpServer } from "./helpers/guest-relay.js";
import {
  ipAddrs,
  ipLinks,
  ipRoutes,
  ipv4ByLink,
  iptablesSave,
  NFT,
  nftRuleset,
  nftTable,
  normalizeIptablesSave,
  normalizeNftRuleset,
  rulesByTable,
  rulesMatching,
  snapshot,
  comparable,
  tapLinks,
} from "./helpers/kernel-state.js";
import { createNamespace, hasExited, listNamespaces, REPO_ROOT, spawnIn, Topology } from "./helpers/netns.js";
import { ProcessOutput } from "./helpers/process-output.js";
import { createTap, handMadeGuest } from "./helpers/hand-made-guest.js";

const RELAY_SCRIPT = fileURLToPath(new URL("./helpers/tap-relay.ts", import.meta.url));

/** Snapshot of the root namespace's links, to prove the harness leaves it alone. */
async function rootLinks(): Promise<string[]> {
  const { stdout } = await execa("ip", ["-d", "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string; linkinfo?: { info_kind?: string } }[])
    .map((link) => `${link.ifname}:${link.linkinfo?.info_kind ?? ""}`)
    .sort();
}

test("frames flow through the relay between the node's TAP and the guest, until the guest stops", async (t) => {
  const rootBefore = await rootLinks();
  const topology = await Topology.create({ teardown: t });
  const guest = await handMadeGuest(topology.node, "tapx");
  t.true(guest.guestNs.startsWith(`${topology.id}-guest-`));

  // The guest NIC looks like a kernel's after ip=10.220.0.2::10.220.0.1:255.255.255.252::eth0:off
  const [eth0] = (await ipLinks(guest.guestNs)).filter((link) => link.ifname === "eth0");
  t.is(eth0?.address, "02:00:00:00:00:02");
  t.is(eth0?.mtu, 1500);
  t.true(eth0?.flags.includes("UP"));
  t.deepEqual(ipv4ByLink(await ipAddrs(guest.guestNs)).get("eth0"), ["10.220.0.2/30"]);
  t.true((await ipRoutes(guest.guestNs)).some((route) => route.dst === "default" && route.gateway === "10.220.0.1"));

  // The service's TAP is attached (carrier) and still persistent with a vnet header.
  const [tap] = tapLinks(await ipLinks(topology.node));
  t.is(tap?.ifname, "tapx");
  t.true(tap?.flags.includes("LOWER_UP"), `tapx flags: ${tap?.flags.join(",")}`);
  t.is(tap?.linkinfo?.info_data?.vnet_hdr, true);
  t.is(tap?.linkinfo?.info_data?.persist, true);

  const server = await startHttpServer(guest.guestNs, 8080, "hello from 10.220.0.2");
  const answer = await httpGet(topology.node, "http://10.220.0.2:8080/", 3000);
  t.deepEqual(answer, { ok: true, status: 200, body: "hello from 10.220.0.2" });
  t.is(server.requests()[0]?.remoteAddress, "10.220.0.1");

  await guest.stop();
  await guest.stop(); // idempotent
  t.false((await listNamespaces()).includes(guest.guestNs));
  t.true(hasExited(server.output.subprocess));
  const afterStop = await httpGet(topology.node, "http://10.220.0.2:8080/", 1000);
  t.false(afterStop.ok);

  // The TAP survives its VMM (persistent), now without carrier.
  const [detached] = tapLinks(await ipLinks(topology.node));
  t.is(detached?.ifname, "tapx");
  t.false(detached?.flags.includes("LOWER_UP"));

  await topology.dispose();
  t.deepEqual(await rootLinks(), rootBefore);
});

test("a guest can attach again after a stop; large transfers cross the relay both ways, with and without offloads", async (t) => {
  const topology = await Topology.create({ teardown: t });
  await createTap(topology.node, "tapy", "10.220.0.5/30");
  const options = {
    nodeNs: topology.node,
    tapName: "tapy",
    guestIp: "10.220.0.6",
    hostIp: "10.220.0.5",
    prefixLength: 30,
    guestMac: "02:00:00:00:00:06",
    mtu: 1500,
  };
  // Bodies far larger than the MTU: with offloads on, GSO super-frames cross the relay.
  const toNode = "n".repeat(300_000);
  await startHttpServer(topology.node, 8081, toNode, { host: "10.220.0.5" });
  for (const offload of [true, false]) {
    const guest = await startGuest({ ...options, offload });
    const body = `${offload ? "offload" : "plain"} ${"x".repeat(300_000)}`;
    await startHttpServer(guest.guestNs, 8080, body);
    const fromGuest = await httpGet(topology.node, "http://10.220.0.6:8080/", 5000);
    t.true(fromGuest.ok && fromGuest.body === body, JSON.stringify(fromGuest).slice(0, 200));
    const fromNode = await httpGet(guest.guestNs, "http://10.220.0.5:8081/", 5000);
    t.true(fromNode.ok && fromNode.body === toNode, JSON.stringify(fromNode).slice(0, 200));
    await guest.stop();
  }
});

test("world reaches the node's veth address and nothing else by default", async (t) => {
  const topology = await Topology.create({ teardown: t });
  await startHttpServer(topology.node, 9090, "node says hi");
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:9090/`), {
    ok: true,
    status: 200,
    body: "node says hi",
  });
  // No route from world to the pool: fails at once, no packet leaves.
  const noRoute = await httpGet(topology.world, "http://10.220.0.2:8080/", 1000);
  t.false(noRoute.ok);
  t.true(!noRoute.ok && ["ENETUNREACH", "EHOSTUNREACH"].includes(noRoute.code), JSON.stringify(noRoute));
  // Nobody listening: a typed failure, quickly.
  const refused = await httpGet(topology.world, `http://${topology.nodeIp}:9999/`, 1000);
  t.true(!refused.ok && refused.code === "ECONNREFUSED", JSON.stringify(refused));
});

test("the relay refuses a TAP that does not exist instead of creating one", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const error = await t.throwsAsync(
    startGuest({
      nodeNs: topology.node,
      tapName: "nosuchtap",
      guestIp: "10.220.0.2",
      hostIp: "10.220.0.1",
      prefixLength: 30,
      guestMac: "02:00:00:00:00:02",
      mtu: 1500,
    }),
  );
  t.regex(error?.message ?? "", /fatal: TAP nosuchtap does not exist/);
  t.deepEqual(tapLinks(await ipLinks(topology.node)), []);
  // The failed guest's namespace is gone already.
  t.deepEqual(topology.namespaces().sort(), [topology.node, topology.world].sort());
});

test("the relay exits when its parent goes away (stdin closes)", async (t) => {
  const topology = await Topology.create({ teardown: t });
  await createTap(topology.node, "tapz", "10.220.0.9/30");
  const guestNs = `${topology.id}-guest-manual`;
  await createNamespace(guestNs);
  const relay = spawnIn(
    topology.node,
    process.execPath,
    ["--import", "tsx", RELAY_SCRIPT, "--tap", "tapz", "--guest-tap", "gmanual0", "--guest-ns", guestNs],
    { cwd: REPO_ROOT },
  );
  const output = new ProcessOutput(relay, "relay");
  await output.waitForLine((line) => line === "ready", 15_000, "ready");
  t.deepEqual(tapLinks(await ipLinks(guestNs)).map((link) => link.ifname), ["gmanual0"]);
  relay.stdin?.end();
  const result = await relay;
  t.is(result.signal, "SIGTERM");
  // The guest-side TAP was not persistent: it went away with the relay's descriptor.
  t.deepEqual(tapLinks(await ipLinks(guestNs)), []);
  t.is(tapLinks(await ipLinks(topology.node))[0]?.ifname, "tapz");
});

test("kernel-state snapshots are comparable and find rules", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const before = comparable(await snapshot(topology.node));
  await createTap(topology.node, "tapk", "10.220.0.13/30");
  await topology.execNode("iptables", ["-t", "nat", "-A", "POSTROUTING", "-s", "10.220.0.12/30", "-j", "MASQUERADE"]);
  await topology.execNode("iptables", ["-A", "FORWARD", "-i", "tapk", "-j", "ACCEPT"]);
  const save = await iptablesSave(topology.node);
  t.notRegex(save, /^#/m);
  t.notRegex(save, /\[\d+:\d+\]/);
  t.deepEqual(rulesMatching(save, "10.220.0.12/30"), ["-A POSTROUTING -s 10.220.0.12/30 -j MASQUERADE"]);
  t.deepEqual(rulesByTable(save)["filter"], ["-A FORWARD -i tapk -j ACCEPT"]);
  t.is(await iptablesSave(topology.node), save, "two saves of the same state are equal");
  t.deepEqual(
    tapLinks(await ipLinks(topology.node)).map((link) => link.ifname),
    ["tapk"],
  );

  await topology.execNode("iptables", ["-t", "nat", "-D", "POSTROUTING", "-s", "10.220.0.12/30", "-j", "MASQUERADE"]);
  await topology.execNode("iptables", ["-D", "FORWARD", "-i", "tapk", "-j", "ACCEPT"]);
  await topology.execNode("ip", ["link", "del", "tapk"]);
  const after = comparable(await snapshot(topology.node));
  t.deepEqual(after.links, before.links);
  t.deepEqual(after.addrs, before.addrs);
  t.deepEqual(after.routes, before.routes);
  t.deepEqual(rulesMatching(after.iptables, "-A "), rulesMatching(before.iptables, "-A "));

  t.is(
    normalizeIptablesSave("# Generated by x\n*nat\n:PREROUTING ACCEPT [12:345]\nCOMMIT\n# Completed on y\n"),
    "*nat\n:PREROUTING ACCEPT\nCOMMIT",
  );
});

test("nft listings parse: chains with their hook, rules with comment and handle, set and map elements", async (t) => {
  const topology = await Topology.create({ teardown: t });
  t.is(await nftTable(topology.node), undefined, "no table yet");
  t.is(await nftRuleset(topology.node), "");
  await topology.execNode(NFT, ["-f", "-"], {
    input: [
      "add table inet rik-network",
      "add set inet rik-network pool { type ipv4_addr; flags interval; elements = { 10.220.0.0/24 }; }",
      "add map inet rik-network ports { type inet_proto . inet_service : ipv4_addr . inet_service; elements = { udp . 53 : 10.220.0.6 . 5353, tcp . 8080 : 10.220.0.2 . 3000 }; }",
      "add chain inet rik-network accept_guests { type filter hook forward priority 0; policy accept; }",
      "add chain inet rik-network plain",
      'add rule inet rik-network accept_guests iifname "rik*" counter accept comment "rik-network:0123456789abcdef"',
      "add rule inet rik-network accept_guests jump plain",
      "",
    ].join("\n"),
  });
  const table = await nftTable(topology.node);
  t.deepEqual(table?.sets, { pool: ["10.220.0.0/24"] });
  t.deepEqual(table?.maps, { ports: ["tcp . 8080 : 10.220.0.2 . 3000", "udp . 53 : 10.220.0.6 . 5353"] });
  t.deepEqual(table?.elements, ["tcp . 8080 : 10.220.0.2 . 3000", "udp . 53 : 10.220.0.6 . 5353"]);
  t.deepEqual(Object.keys(table?.chains ?? {}), ["accept_guests", "plain"]);
  t.is(table?.chains["accept_guests"]?.hook, "type filter hook forward priority filter; policy accept;");
  t.is(table?.chains["plain"]?.hook, undefined);
  const [counted, jump] = table?.chains["accept_guests"]?.rules ?? [];
  t.like(counted, { text: 'iifname "rik*" counter packets 0 bytes 0 accept', comment: "rik-network:0123456789abcdef" });
  t.like(jump, { text: "jump plain", comment: undefined });
  t.true(Number.isInteger(counted?.handle) && counted?.handle !== jump?.handle);
  const ruleset = await nftRuleset(topology.node);
  t.regex(ruleset, /iifname "rik\*" counter accept comment "rik-network:0123456789abcdef"$/m, "counters dropped");
  t.notRegex(ruleset, /handle|^\s*$/m);
  t.is(normalizeNftRuleset("table ip t {\n\n\tcounter packets 12 bytes 345 drop\n}\n"), "table ip t {\n\tcounter drop\n}");
});

test("dispose removes every namespace of the topology, even with processes running", async (t) => {
  const topology = await Topology.create();
  t.teardown(() => topology.dispose());
  await createTap(topology.node, "tapd", "10.220.0.17/30");
  const guest = await startGuest({
    nodeNs: topology.node,
    tapName: "tapd",
    guestIp: "10.220.0.18",
    hostIp: "10.220.0.17",
    prefixLength: 30,
    guestMac: "02:00:00:00:00:12",
    mtu: 1400,
  });
  await startHttpServer(guest.guestNs, 8080, "x");
  await startHttpServer(topology.world, 8080, "y");
  // A process the harness does not track: dispose must still find and kill it.
  const sleeper = execa("ip", ["netns", "exec", topology.node, "sleep", "60"], { reject: false });
  t.is(topology.namespaces().length, 3);

  await topology.dispose();
  await topology.dispose(); // idempotent
  const remaining = (await listNamespaces()).filter((name) => name.startsWith(topology.id));
  t.deepEqual(remaining, []);
  t.deepEqual(topology.namespaces(), []);
  t.is((await sleeper).signal, "SIGKILL", "stray process in node was killed");
});
