/**
 * Egress deny (--egress-deny, by default 169.254.0.0/16: link-local and the cloud metadata
 * service): a guest never reaches those destinations, forwarded or on the node, and is
 * refused at once (RST / ICMP unreachable), while ordinary egress keeps working. The world
 * namespace serves a stand-in metadata service on 169.254.169.254, and the node routes
 * there, so that only the firewall stands between a guest and it.
 */
import test from "ava";
import { attachGuest } from "./helpers/attach-guest.js";
import { TEST_FIREWALL_BACKEND } from "./helpers/firewall-backend.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { iptablesSave, nftTable, rulesMatching } from "./helpers/kernel-state.js";
import type { TeardownHost } from "./helpers/netns.js";
import { isRefusal } from "./helpers/refusal.js";
import { startNode } from "./helpers/start-node.js";
import { startUdpEcho } from "./helpers/udp-echo.js";
import { udpRequest } from "./helpers/udp-request.js";
import { functionDefinition } from "./helpers/workload-client.js";

const METADATA = "169.254.169.254";
const DOCUMENTATION = "198.51.100.10";
/** An address of the node itself in the link-local range, through which an exposed port is hairpinned. */
const NODE_LINK_LOCAL = "169.254.10.1";

/**
 * Under nft, what the deny consists of: the `egress_deny` set's elements, and every rule that
 * matches it (`chain: rule`), in order.
 */
async function nftEgressDeny(ns: string): Promise<{ set: readonly string[] | undefined; rules: string[] }> {
  const table = await nftTable(ns);
  const rules = Object.entries(table?.chains ?? {}).flatMap(([name, chain]) =>
    chain.rules.filter((rule) => rule.text.includes("@egress_deny")).map((rule) => `${name}: ${rule.text}`),
  );
  return { set: table?.sets["egress_deny"], rules };
}

/** The nft rules that refuse what is in `egress_deny`: forwarded (by conntrack's original destination) and to the node. */
const NFT_DENY_RULES = [
  'filter_forward: iifname "rik*" ct direction original ct original ip daddr @egress_deny meta l4proto tcp reject with tcp reset',
  'filter_forward: iifname "rik*" ct direction original ct original ip daddr @egress_deny reject',
  "guest_input: ip daddr @egress_deny meta l4proto tcp reject with tcp reset",
  "guest_input: ip daddr @egress_deny reject",
];

/** A guest behind a function exposing 8080, and world servers on the metadata address, a documentation address and the world's own. */
async function egressNode(t: TeardownHost, extraArgs: readonly string[] = []) {
  const { topology, client, service } = await startNode(t, {
    service: { extraArgs },
    beforeService: async (topo) => {
      for (const address of [METADATA, DOCUMENTATION]) {
        await topo.execWorld("ip", ["addr", "add", `${address}/32`, "dev", topo.worldVeth]);
        await topo.execNode("ip", ["route", "add", `${address}/32`, "via", topo.worldIp]);
      }
      await topo.execNode("ip", ["addr", "add", `${NODE_LINK_LOCAL}/32`, "dev", topo.nodeVeth]);
      await topo.execWorld("ip", ["route", "add", `${NODE_LINK_LOCAL}/32`, "via", topo.nodeIp]);
    },
  });
  const created = await client.create("fn-egress", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const guest = await attachGuest(topology.node, created);
  await startHttpServer(guest.guestNs, 3000, "guest");
  const servers = {
    metadata: await startHttpServer(topology.world, 80, "metadata", { host: METADATA }),
    documentation: await startHttpServer(topology.world, 80, "documentation", { host: DOCUMENTATION }),
    world: await startHttpServer(topology.world, 9000, "world", { host: topology.worldIp }),
    metadataUdp: await startUdpEcho(topology.world, 53, "metadata/udp", { host: METADATA }),
  };
  return { topology, service, guest, servers };
}

test("by default a guest is refused 169.254.0.0/16, forwarded (metadata) or on the node (hairpin), and reaches the world", async (t) => {
  const { topology, guest, servers } = await egressNode(t);

  // Step 1 (control): the node itself reaches the metadata stand-in, so the route is there.
  t.like(await httpGet(topology.node, `http://${METADATA}/`, 5000), { ok: true, body: "metadata" });

  // Step 2: the guest is refused, TCP and UDP, and nothing reaches the servers.
  const tcp = await httpGet(guest.guestNs, `http://${METADATA}/`, 5000);
  t.true(isRefusal(tcp), JSON.stringify(tcp));
  const udp = await udpRequest(guest.guestNs, METADATA, 53, 5000);
  t.true(isRefusal(udp), JSON.stringify(udp));
  t.deepEqual(servers.metadata.requests().map((r) => r.remoteAddress), [topology.nodeIp], "only the node's own request");
  t.deepEqual(servers.metadataUdp.datagrams(), []);

  // Step 3: a link-local address of the node, DNATed to an exposed port, is refused too; the node's routable one works.
  const hairpin = await httpGet(guest.guestNs, `http://${NODE_LINK_LOCAL}:8080/`, 5000);
  t.true(isRefusal(hairpin), JSON.stringify(hairpin));
  t.like(await httpGet(guest.guestNs, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, body: "guest" });
  // What the guest opens is egress; its replies to a client that came in through that address are not.
  t.like(await httpGet(topology.world, `http://${NODE_LINK_LOCAL}:8080/`, 5000), { ok: true, body: "guest" });

  // Step 4: ordinary egress still works, masqueraded.
  t.like(await httpGet(guest.guestNs, `http://${topology.worldIp}:9000/`, 5000), { ok: true, body: "world" });
  t.deepEqual(servers.world.requests().map((r) => r.remoteAddress), [topology.nodeIp]);

  // Step 5: packets conntrack does not track (another tool's NOTRACK) do not slip past the deny unmasqueraded.
  await topology.execNode("iptables", ["-t", "raw", "-A", "PREROUTING", "-p", "udp", "--dport", "53", "-j", "NOTRACK"]);
  const untracked = await udpRequest(guest.guestNs, METADATA, 53, 1500, "untracked");
  t.false(untracked.ok, JSON.stringify(untracked));
  t.deepEqual(servers.metadataUdp.datagrams(), []);
  await topology.execNode("iptables", ["-t", "raw", "-D", "PREROUTING", "-p", "udp", "--dport", "53", "-j", "NOTRACK"]);

  // Step 6: the rules, in the node's kernel: four iptables rules, or the nft set and the four rules that match it.
  if (TEST_FIREWALL_BACKEND === "nft") {
    t.deepEqual(await nftEgressDeny(topology.node), { set: ["169.254.0.0/16"], rules: NFT_DENY_RULES });
  } else {
    const filter = await iptablesSave(topology.node, "filter");
    t.deepEqual(rulesMatching(filter, "169.254.0.0/16"), [
      "-A RIKLET-FORWARD -i rik+ -p tcp -m conntrack --ctorigdst 169.254.0.0/16 --ctdir ORIGINAL -m comment --comment rik-network -j REJECT --reject-with tcp-reset",
      "-A RIKLET-FORWARD -i rik+ -m conntrack --ctorigdst 169.254.0.0/16 --ctdir ORIGINAL -m comment --comment rik-network -j REJECT --reject-with icmp-port-unreachable",
      "-A RIKLET-INPUT -d 169.254.0.0/16 -p tcp -m comment --comment rik-network -j REJECT --reject-with tcp-reset",
      "-A RIKLET-INPUT -d 169.254.0.0/16 -m comment --comment rik-network -j REJECT --reject-with icmp-port-unreachable",
    ]);
  }
});

test("--egress-deny with a list of its own replaces the default: the listed range is refused, metadata is reached", async (t) => {
  const { topology, guest, servers } = await egressNode(t, ["--egress-deny", "198.51.100.0/24"]);

  const denied = await httpGet(guest.guestNs, `http://${DOCUMENTATION}/`, 5000);
  t.true(isRefusal(denied), JSON.stringify(denied));
  t.deepEqual(servers.documentation.requests(), []);
  t.like(await httpGet(guest.guestNs, `http://${METADATA}/`, 5000), { ok: true, body: "metadata" });
  t.like(await httpGet(guest.guestNs, `http://${topology.worldIp}:9000/`, 5000), { ok: true, body: "world" });
  if (TEST_FIREWALL_BACKEND === "nft") t.deepEqual(await nftEgressDeny(topology.node), { set: ["198.51.100.0/24"], rules: NFT_DENY_RULES });
  else t.deepEqual(rulesMatching(await iptablesSave(topology.node, "filter"), "169.254."), []);
});

test("--egress-deny none turns it off, with a warning: the guest reaches the metadata address", async (t) => {
  const { topology, service, guest, servers } = await egressNode(t, ["--egress-deny", "none"]);

  const warning = await service.waitForLog((entry) => entry.level === "warn" && entry.message.includes("--egress-deny none"));
  t.regex(warning.message, /169\.254\.169\.254/);
  t.like(await httpGet(guest.guestNs, `http://${METADATA}/`, 5000), { ok: true, body: "metadata" });
  t.deepEqual(servers.metadata.requests().map((r) => r.remoteAddress), [topology.nodeIp], "masqueraded as the node");
  // Under nft the rules stay, matching an empty set.
  if (TEST_FIREWALL_BACKEND === "nft") t.deepEqual(await nftEgressDeny(topology.node), { set: [], rules: NFT_DENY_RULES });
  else t.deepEqual(rulesMatching(await iptablesSave(topology.node, "filter"), "--ctorigdst"), []);
});
