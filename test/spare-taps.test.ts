/**
 * Spare TAPs: the service keeps a few TAPs made ahead of time, down and without an address,
 * and a CREATE renames one instead of making its own. Checked against the kernel: which
 * device became the instance's TAP (its ifindex), what it carries, that spares are made
 * again, that a spare that cannot be renamed is not leaked, and that a stopped service
 * leaves none.
 */
import test, { type ExecutionContext } from "ava";
import { tapNameFor } from "../src/network/model/instance-naming.js";
import { attachGuest } from "./helpers/attach-guest.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { ipAddrs, ipLinks, ipv4ByLink, sparesOnce, spareTapLinks, tapIpv6, WITHOUT_IPV6, tapLinks } from "./helpers/kernel-state.js";
import { delay, Topology } from "./helpers/netns.js";
import { startService, type ServiceProcess } from "./helpers/service-process.js";
import { functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/24";

async function startNode(t: ExecutionContext, topology: Topology, extraArgs: string[] = []) {
  const service = await startService({ nodeNs: topology.node, pool: POOL, extraArgs });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  return { service, client };
}

async function stopped(service: ServiceProcess, client: WorkloadClient): Promise<void> {
  client.close();
  await service.stop();
}

test("a CREATE renames a spare TAP into its own, addressed and up; a new spare replaces it; stopping deletes the spares", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const { service, client } = await startNode(t, topology);

  // Step 1: four spares (the default), each a persistent TAP with Firecracker's flags, down, without an IPv4 address.
  const spares = await sparesOnce(topology.node, 4);
  t.is(spares.length, 4);
  const addresses = ipv4ByLink(await ipAddrs(topology.node));
  for (const spare of spares) {
    t.regex(spare.ifname, /^rik-spare-\d+$/);
    t.like(spare.linkinfo?.info_data, { type: "tap", pi: false, vnet_hdr: true, persist: true }, spare.ifname);
    t.false(spare.flags.includes("UP"), `${spare.ifname} is down`);
    t.deepEqual(addresses.get(spare.ifname) ?? [], [], `${spare.ifname} has no IPv4 address`);
    t.deepEqual(await tapIpv6(topology.node, spare.ifname), WITHOUT_IPV6, `${spare.ifname} is made without IPv6`);
  }

  // Step 2: CREATE: the instance's TAP is one of the spares (same ifindex), renamed, up, with its address and route_localnet.
  const network = await client.create("fn-a", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const fn = network.network.value!;
  const [tap] = tapLinks(await ipLinks(topology.node));
  t.is(tap?.ifname, fn.tapName);
  t.true(spares.some((spare) => spare.ifindex === tap?.ifindex), "the TAP is a former spare");
  t.true(tap?.flags.includes("UP"));
  t.is(tap?.mtu, 1500);
  t.like(tap?.linkinfo?.info_data, { type: "tap", pi: false, vnet_hdr: true, persist: true });
  t.deepEqual(ipv4ByLink(await ipAddrs(topology.node)).get(fn.tapName), ["10.220.0.1/30"]);
  t.is(String((await topology.execNode("sysctl", ["-n", `net.ipv4.conf.${fn.tapName}.route_localnet`])).stdout).trim(), "1");
  // The rename kept the spare's IPv6 settings: up, it has no IPv6 address, not even a link-local one.
  t.deepEqual(await tapIpv6(topology.node, fn.tapName), WITHOUT_IPV6);

  // Step 3: a VMM attaches to it as to any TAP, and the exposed port reaches the guest.
  const guest = await attachGuest(topology.node, network);
  await startHttpServer(guest.guestNs, 3000, "guest behind a former spare");
  t.like(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, body: "guest behind a former spare" });

  // Step 4: the taken spare is replaced by a new one, under a name not used before.
  const refilled = await sparesOnce(topology.node, 4);
  t.is(refilled.length, 4);
  t.false(refilled.some((spare) => spare.ifindex === tap?.ifindex));
  t.true(refilled.some((spare) => !spares.some((before) => before.ifname === spare.ifname)), "a new name");

  // Step 5: stopping the service deletes its spares; the instance's TAP stays.
  await stopped(service, client);
  t.deepEqual(spareTapLinks(await ipLinks(topology.node)), []);
  t.deepEqual(tapLinks(await ipLinks(topology.node)).map((link) => link.ifname), [fn.tapName]);
});

test("a spare that cannot be renamed (a device already has the name) is deleted, and the CREATE makes its TAP the usual way", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const { client } = await startNode(t, topology, ["--spare-taps", "2"]);
  const spares = await sparesOnce(topology.node, 2);

  // Step 1: a TAP already bears the name of fn-x's TAP (as a VMM-side leftover would).
  const name = tapNameFor("fn-x");
  await topology.execNode("ip", ["tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr"]);
  const [existing] = tapLinks(await ipLinks(topology.node));

  // Step 2: the CREATE succeeds on that very device, addressed and up.
  const network = await client.create("fn-x", functionDefinition());
  t.is(network.network.value?.tapName, name);
  const [tap, ...others] = tapLinks(await ipLinks(topology.node));
  t.is(others.length, 0);
  t.is(tap?.ifindex, existing?.ifindex, "TUNSETIFF re-attached to the existing TAP");
  t.true(tap?.flags.includes("UP"));
  t.deepEqual(ipv4ByLink(await ipAddrs(topology.node)).get(name), ["10.220.0.1/30"]);
  t.deepEqual(await tapIpv6(topology.node, name), WITHOUT_IPV6, "re-attached, it got IPv6 off too");

  // Step 3: the spare it tried is gone, not left with the address; two spares again, none of them addressed.
  const after = await sparesOnce(topology.node, 2);
  t.is(after.length, 2);
  t.true(spares.some((spare) => !after.some((now) => now.ifindex === spare.ifindex)), "the tried spare was deleted");
  const addresses = ipv4ByLink(await ipAddrs(topology.node));
  for (const spare of after) t.deepEqual(addresses.get(spare.ifname) ?? [], [], spare.ifname);
});

test("spares a killed service left are deleted at start (a non-TAP device under such a name is not), new ones numbered past them; --spare-taps 0 keeps none", async (t) => {
  const topology = await Topology.create({ teardown: t });

  // Step 1: what a SIGKILL leaves: spares, one of them with an address someone gave it.
  await topology.execNode("ip", ["tuntap", "add", "dev", "rik-spare-7", "mode", "tap", "vnet_hdr"]);
  await topology.execNode("ip", ["tuntap", "add", "dev", "rik-spare-9", "mode", "tap", "vnet_hdr"]);
  await topology.execNode("ip", ["addr", "add", "192.0.2.1/30", "dev", "rik-spare-9"]);
  // And a device of another kind under a spare's name: not ours, so left alone.
  await topology.execNode("ip", ["link", "add", "rik-spare-3", "type", "veth", "peer", "name", "rikt-peer3"]);

  // Step 2: at start they are deleted, and three fresh ones are made, numbered from 10.
  const first = await startNode(t, topology, ["--spare-taps", "3"]);
  const spares = await sparesOnce(topology.node, 3);
  t.deepEqual(
    spares.map((spare) => spare.ifname),
    ["rik-spare-10", "rik-spare-11", "rik-spare-12"],
  );
  t.deepEqual(ipv4ByLink(await ipAddrs(topology.node)).get("rik-spare-9"), undefined);
  t.true((await ipLinks(topology.node)).some((link) => link.ifname === "rik-spare-3" && link.linkinfo?.info_kind === "veth"), "the veth stays");
  await stopped(first.service, first.client);

  // Step 3: with --spare-taps 0 there are none, and a CREATE makes its own TAP.
  const { client } = await startNode(t, topology, ["--spare-taps", "0"]);
  const network = await client.create("fn-a", functionDefinition());
  await delay(300);
  t.deepEqual(spareTapLinks(await ipLinks(topology.node)), []);
  t.deepEqual(tapLinks(await ipLinks(topology.node)).map((link) => link.ifname), [network.network.value!.tapName]);
  t.deepEqual(await tapIpv6(topology.node, network.network.value!.tapName), WITHOUT_IPV6, "made on the spot, without IPv6 too");
});
