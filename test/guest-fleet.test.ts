/**
 * Self-tests of the guest fleet (test/helpers/guest-fleet.ts) and the traffic probe
 * (test/helpers/traffic-probe.ts), with TAPs made by hand the way the service makes them, so
 * they do not depend on the service. Needs root; touches only namespaces it creates.
 */
import fs from "node:fs";
import test from "ava";
import { execa } from "execa";
import { fleetGuestBody, fleetNicName, startGuestFleet, type FleetGuest } from "./helpers/guest-fleet.js";
import { ipAddrs, ipLinks, ipv4ByLink, tapLinks } from "./helpers/kernel-state.js";
import { delay, hasExited, listNamespaces, namespacePids, setSysctl, Topology } from "./helpers/netns.js";
import {
  failures,
  httpGetAll,
  startTrafficProbe,
  successesPerTarget,
  summarizeProbe,
  type ProbeTarget,
} from "./helpers/traffic-probe.js";

const PORT = 3000;

/** Address `offset` of slot `slot`, laid out as the service does: 10.220.0.0 + 4 * slot. */
function slotAddress(slot: number, offset: number): string {
  const value = (10 << 24) | (220 << 16) | (slot * 4 + offset);
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join(".");
}

function slotGuest(slot: number): FleetGuest {
  return {
    tapName: `tap${String(slot).padStart(3, "0")}`,
    hostIp: slotAddress(slot, 1),
    guestIp: slotAddress(slot, 2),
    prefixLength: 30,
    guestMac: `02:00:00:00:${((slot >> 8) & 255).toString(16).padStart(2, "0")}:${(slot & 255).toString(16).padStart(2, "0")}`,
    mtu: 1500,
  };
}

/** Persistent vnet_hdr TAPs with the host address of their /30, as the service makes them; one `ip -batch`. */
async function createTaps(ns: string, guests: readonly FleetGuest[]): Promise<void> {
  const lines = guests.flatMap((guest) => [
    `tuntap add dev ${guest.tapName} mode tap vnet_hdr`,
    `addr add ${guest.hostIp}/${guest.prefixLength} dev ${guest.tapName}`,
    `link set dev ${guest.tapName} up`,
  ]);
  await execa("ip", ["-n", ns, "-batch", "-"], { input: `${lines.join("\n")}\n` });
}

function targetsOf(guests: readonly FleetGuest[]): ProbeTarget[] {
  return guests.map((guest) => ({ url: `http://${guest.guestIp}:${PORT}/`, expectBody: fleetGuestBody(guest.guestIp) }));
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of live processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  return fs.readdirSync("/proc").flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      return fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text) ? [Number(entry)] : [];
    } catch {
      return []; // exited meanwhile
    }
  });
}

test.serial("100 guests behind 100 TAPs answer as themselves from node and world; a probe sees no failure; stop leaves nothing", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const guests = Array.from({ length: 100 }, (_, slot) => slotGuest(slot));
  const tapsStarted = performance.now();
  await createTaps(topology.node, guests);
  t.log(`100 TAPs created in ${Math.round(performance.now() - tapsStarted)} ms`);

  const fleet = await startGuestFleet({ nodeNs: topology.node, guests, port: PORT });
  const { relayReadyMs, configureMs, totalMs } = fleet.timings;
  t.log(`fleet of 100: ${Math.round(totalMs)} ms (relay ready ${Math.round(relayReadyMs)} ms, guest config ${Math.round(configureMs)} ms)`);
  t.true(fleet.guestNs.startsWith(`${topology.id}-fleet-`));

  // Every guest NIC is configured as its guest kernel would configure eth0.
  const links = new Map((await ipLinks(fleet.guestNs)).map((link) => [link.ifname, link]));
  const addrs = ipv4ByLink(await ipAddrs(fleet.guestNs));
  for (const [index, guest] of guests.entries()) {
    const nic = links.get(fleetNicName(index));
    t.is(nic?.address, guest.guestMac);
    t.is(nic?.mtu, guest.mtu);
    t.true(nic?.flags.includes("LOWER_UP"), `${fleetNicName(index)}: ${nic?.flags.join(",")}`);
    t.deepEqual(addrs.get(fleetNicName(index)), [`${guest.guestIp}/30`]);
  }
  // Every service TAP is attached (carrier) and still persistent.
  const taps = tapLinks(await ipLinks(topology.node));
  t.is(taps.filter((tap) => tap.linkinfo?.info_data?.persist === true && tap.flags.includes("LOWER_UP")).length, 100);

  // From the node (source: the TAP's host address), each guest answers as itself.
  const targets = targetsOf(guests);
  let started = performance.now();
  const fromNode = await httpGetAll(topology.node, targets, { concurrency: 16 });
  t.log(`100 GETs from node (16 at a time): ${Math.round(performance.now() - started)} ms`);
  t.deepEqual(failures(fromNode), []);

  // From the world through the node's forwarding: replies to a non-local source only get
  // back through the right NIC thanks to the per-guest policy routes.
  await setSysctl(topology.node, "net.ipv4.ip_forward", 1);
  await topology.execWorld("ip", ["route", "add", "10.220.0.0/16", "via", topology.nodeIp]);
  started = performance.now();
  const fromWorld = await httpGetAll(topology.world, targets, { concurrency: 16 });
  t.log(`100 GETs from world (16 at a time): ${Math.round(performance.now() - started)} ms`);
  t.deepEqual(failures(fromWorld), []);

  // Background traffic over 20 guests for 2 s.
  const probeTargets = targets.slice(0, 20);
  const probe = await startTrafficProbe({ ns: topology.node, targets: probeTargets, intervalMs: 2 });
  await probe.waitFor((sofar) => successesPerTarget(sofar, probeTargets.length).every((count) => count > 0), 5000);
  await delay(2000 - (Date.now() - probe.startedAt));
  const records = await probe.stop();
  const summary = summarizeProbe(records, probeTargets.length);
  t.log(`probe: ${summary.requests} requests in ${summary.durationMs} ms = ${summary.requestsPerSecond}/s, latency p50 ${summary.latencyMs.p50} ms p99 ${summary.latencyMs.p99} ms, skipped ${probe.skipped()}`);
  t.deepEqual(failures(records), [], JSON.stringify(summary));
  t.true(summary.requests > 200, JSON.stringify(summary));
  t.true(successesPerTarget(records, probeTargets.length).every((count) => count > 0));
  t.true(records.every((record) => record.at >= probe.startedAt));
  t.deepEqual(await probe.stop(), records, "stop is idempotent");

  t.deepEqual(fleet.down(), []);
  started = performance.now();
  await fleet.stop();
  t.log(`fleet stopped in ${Math.round(performance.now() - started)} ms`);
  await fleet.stop(); // idempotent
  t.false((await listNamespaces()).includes(fleet.guestNs));
  t.true(hasExited(fleet.output.subprocess));
  t.false(isRunning(fleet.relayPid));
  t.deepEqual(processesMentioning(fleet.guestNs), [], "no relay or guest-side process remains");
  t.deepEqual(await namespacePids(topology.node), [], "nothing left running in node");
  // The service's TAPs survive their "VMMs", detached.
  const detached = tapLinks(await ipLinks(topology.node));
  t.is(detached.length, 100);
  t.true(detached.every((tap) => !tap.flags.includes("LOWER_UP")));
});

test("the fleet refuses a TAP that does not exist instead of creating one", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const existing = slotGuest(0);
  await createTaps(topology.node, [existing]);
  const error = await t.throwsAsync(
    startGuestFleet({ nodeNs: topology.node, guests: [existing, { ...slotGuest(1), tapName: "nosuchtap" }] }),
  );
  t.regex(error?.message ?? "", /fatal: TAP nosuchtap does not exist/);
  t.deepEqual(
    tapLinks(await ipLinks(topology.node)).map((tap) => tap.ifname),
    [existing.tapName],
  );
  // The failed fleet's namespace is gone already.
  t.deepEqual(topology.namespaces().sort(), [topology.node, topology.world].sort());
});

test("a guest whose TAP is deleted goes down alone; the relay leaves when its parent dies", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const guests = [0, 1, 2].map(slotGuest);
  await createTaps(topology.node, guests);
  const fleet = await startGuestFleet({ nodeNs: topology.node, guests, port: PORT });
  t.deepEqual(failures(await httpGetAll(topology.node, targetsOf(guests))), []);

  // As when the service destroys one instance while the others run.
  await topology.execNode("ip", ["link", "del", guests[1]!.tapName]);
  await fleet.output.waitForLine((line) => line.startsWith("down 1 "), 5000, '"down 1"');
  t.deepEqual(fleet.down().map((down) => down.index), [1]);
  // Its guest NIC is deleted with it; the other guests still answer.
  for (let attempt = 0; attempt < 50 && (await ipLinks(fleet.guestNs)).some((link) => link.ifname === fleetNicName(1)); attempt++) {
    await delay(20);
  }
  t.deepEqual(
    (await ipLinks(fleet.guestNs)).map((link) => link.ifname).filter((name) => name !== "lo").sort(),
    [fleetNicName(0), fleetNicName(2)],
  );
  const [first, , third] = targetsOf(guests);
  t.deepEqual(failures(await httpGetAll(topology.node, [first!, third!])), []);
  // A probe left alone stops itself after maxDurationMs.
  const probe = await startTrafficProbe({ ns: topology.node, targets: [first!, third!], maxDurationMs: 500 });
  const records = await probe.finished;
  t.true(records.length > 10, `${records.length} records`);
  t.deepEqual(failures(records), []);
  t.true(isRunning(fleet.relayPid));

  // The relay's parent (the guest side) dies without a word: its stdin closes, it SIGTERMs
  // itself, and the guest NICs go with its fds.
  fleet.output.subprocess.kill("SIGKILL");
  await fleet.output.closed;
  for (let attempt = 0; attempt < 100 && isRunning(fleet.relayPid); attempt++) await delay(20);
  t.false(isRunning(fleet.relayPid));
  t.deepEqual(tapLinks(await ipLinks(fleet.guestNs)), []);
  const detached = tapLinks(await ipLinks(topology.node));
  t.deepEqual(detached.map((tap) => tap.ifname).sort(), [guests[0]!.tapName, guests[2]!.tapName]);
  t.true(detached.every((tap) => !tap.flags.includes("LOWER_UP")));
  await fleet.stop();
  t.false((await listNamespaces()).includes(fleet.guestNs));
});
