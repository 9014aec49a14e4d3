/**
 * A node moves from one firewall backend to the other by a restart: the new backend's state
 * is made, what the old one left is removed, and live guests keep answering the world the
 * whole time. Then back again. The test names both backends itself, so it runs in the nft
 * pass of `npm test` only (scripts/test runs every integration test once per backend).
 */
import type { InstanceNetwork } from "../src/gen/rik/network/v1/workload_network_pb.js";
import { findNft } from "../src/network/firewall/nftables/nft-firewall.js";
import { testOnBackend } from "./helpers/backend-test.js";
import { fleetGuestBody, startGuestFleet } from "./helpers/guest-fleet.js";
import { ip6tablesSave, iptablesSave } from "./helpers/kernel-state.js";
import { delay, execIn, Topology } from "./helpers/netns.js";
import { startService, type ServiceProcess } from "./helpers/service-process.js";
import { failures, httpGetAll, startTrafficProbe } from "./helpers/traffic-probe.js";
import { functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/24";
const INSTANCES = 10;

/** Our nft table's DNAT elements, sorted; [] when the table does not exist. */
async function nftDnats(ns: string): Promise<string[]> {
  // The system's nft: under npx, PATH starts with node_modules/.bin, which has an unrelated `nft`.
  const nft = findNft();
  const { stdout } = await execIn(ns, nft, ["-j", "list", "tables"]);
  const tables = (JSON.parse(String(stdout)) as { nftables: { table?: { family: string; name: string } }[] }).nftables;
  if (!tables.some((entry) => entry.table?.family === "inet" && entry.table.name === "rik-network")) return [];
  const listing = await execIn(ns, nft, ["list", "map", "inet", "rik-network", "ports"]);
  return [...String(listing.stdout).matchAll(/(tcp|udp) \. (\d+) : ([\d.]+) \. (\d+)/g)].map((m) => m[0]).sort();
}

function ourRules(save: string): string[] {
  return save.split("\n").filter((line) => /rik|RIKLET/.test(line));
}


// It names both backends itself: in the nft pass only.
testOnBackend("nft", "a restart with the other backend moves the node: the old backend's rules go, the new one's come, guests answer throughout", async (t) => {
  t.timeout(4 * 60_000);
  const topology = await Topology.create({ teardown: t });
  const start = (backend: "nft" | "iptables", socketPath?: string) =>
    startService({ nodeNs: topology.node, pool: POOL, logLevel: "info", firewallBackend: backend, ...(socketPath === undefined ? {} : { socketPath }) });
  let service: ServiceProcess = await start("iptables");
  t.teardown(() => service.stop());

  const client = new WorkloadClient(service.address);
  const networks: InstanceNetwork[] = await Promise.all(
    Array.from({ length: INSTANCES }, (_, i) => client.create(`move-${i}`, functionDefinition({ exposure: { port: 11_000 + i, targetPort: 3000 } }))),
  );
  client.close();
  await startGuestFleet({ nodeNs: topology.node, guests: networks.map((n) => n.network.value!), port: 3000 });
  const targets = networks.map((n) => ({
    url: `http://${topology.nodeIp}:${n.network.value!.ports[0]!.hostPort}/`,
    expectBody: fleetGuestBody(n.network.value!.guestIp),
  }));
  t.deepEqual(failures(await httpGetAll(topology.world, targets, { concurrency: 8 })), [], "every guest answers through iptables");
  const iptablesRules = ourRules(await iptablesSave(topology.node));
  t.true(iptablesRules.filter((line) => line.includes("-j DNAT")).length === INSTANCES);
  t.deepEqual(await nftDnats(topology.node), []);

  const probe = await startTrafficProbe({ ns: topology.world, targets, intervalMs: 5, timeoutMs: 2000, maxDurationMs: 120_000 });
  t.teardown(() => probe.stop());
  const wantedDnats = networks.map((n) => `tcp . ${n.network.value!.ports[0]!.hostPort} : ${n.network.value!.guestIp} . 3000`).sort();

  // iptables -> nft
  await delay(500);
  await service.stop();
  service = await start("nft", service.socketPath);
  const moved = service.logs().find((entry) => entry.message === "removed what the other firewall backend left: the node moved backends");
  t.like(moved, { firewall_backend: "nft" });
  t.truthy((moved?.["removed"] as Record<string, unknown> | undefined)?.["iptables"], "the iptables rules were removed");
  t.deepEqual(ourRules(await iptablesSave(topology.node)), [], "no rule or chain of ours is left in iptables");
  t.deepEqual(ourRules(await ip6tablesSave(topology.node)), [], "nor in ip6tables");
  t.deepEqual(await nftDnats(topology.node), wantedDnats);
  await delay(1000);
  t.deepEqual(failures(probe.records()), [], "no request failed while the node moved to nft");

  // nft -> iptables
  await service.stop();
  service = await start("iptables", service.socketPath);
  t.like(
    service.logs().find((entry) => entry.message === "removed what the other firewall backend left: the node moved backends"),
    { firewall_backend: "iptables", removed: { nft: { table_removed: 1 } } },
  );
  t.deepEqual(await nftDnats(topology.node), [], "the nft table is gone");
  t.deepEqual(ourRules(await iptablesSave(topology.node)).filter((line) => line.includes("-j DNAT")).length, INSTANCES);
  await delay(1000);

  // A restart on the same backend finds nothing of the other to remove.
  await service.stop();
  service = await start("iptables", service.socketPath);
  t.is(service.logs().find((entry) => entry.message === "removed what the other firewall backend left: the node moved backends"), undefined);

  const all = await probe.stop();
  t.deepEqual(failures(all), [], "no request failed at any point");
  const answered = new Set(all.filter((record) => record.ok).map((record) => record.target));
  t.is(answered.size, INSTANCES);
  t.log(`${all.length} requests through two moves, none failed`);
});
