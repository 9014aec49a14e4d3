/**
 * A DESTROY answers once its TAP is unusable (down, without its address, renamed out of the
 * instance's name) and deletes it in the background, or makes it a spare when one is wanted
 * and nothing holds it. Checked against the kernel: the instance's TAP name is gone when the
 * answer comes, the device is deleted afterwards (ip monitor), a TAP a guest holds is never
 * made a spare, not even with its carrier turned off, a free one is (same ifindex) and serves
 * the next CREATE, a re-CREATE of the
 * same id right after its DESTROY works, alone and under concurrent cycles, and a stopped
 * service leaves no retired TAP.
 */
import path from "node:path";
import test, { type ExecutionContext } from "ava";
import { attachGuest } from "./helpers/attach-guest.js";
import { httpGet, startHttpServer } from "./helpers/guest-relay.js";
import { kernelDiff } from "./helpers/kernel-diff.js";
import { ipAddrs, ipJson, ipLinks, ipv4ByLink, retiredTapLinks, retiredTapsGone, sparesOnce, spareTapLinks, tapIpv6, tapLinks, WITHOUT_IPV6, type IpLink } from "./helpers/kernel-state.js";
import { delay, killProcess, REPO_ROOT, spawnIn, Topology } from "./helpers/netns.js";
import { ProcessOutput } from "./helpers/process-output.js";
import { startService } from "./helpers/service-process.js";
import { functionDefinition, ResourceStatus, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/24";
const TUN_IOCTL = path.join(REPO_ROOT, "src", "network", "kernel", "tun-ioctl.mjs");

async function startNode(t: ExecutionContext, extraArgs: string[]) {
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node, pool: POOL, extraArgs });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  return { topology, service, client };
}

/** The link with index `index` in `ns`, if any. */
async function linkAt(ns: string, index: number): Promise<IpLink | undefined> {
  return (await ipLinks(ns)).find((link) => link.ifindex === index);
}

function tapOf(network: Awaited<ReturnType<WorkloadClient["create"]>>): string {
  return network.network.value!.tapName;
}

test("the instance's TAP name is gone when DESTROY answers; the device, renamed and down, is deleted afterwards", async (t) => {
  const { topology, client } = await startNode(t, ["--spare-taps", "0"]);
  const network = await client.create("fn-a", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const tapName = tapOf(network);
  const [tap] = tapLinks(await ipLinks(topology.node));
  t.is(tap?.ifname, tapName);
  const index = tap!.ifindex;

  // ip monitor sees every change of the node's links from here on.
  const monitor = new ProcessOutput(spawnIn(topology.node, "ip", ["-o", "monitor", "link"]), "ip monitor link");
  t.teardown(() => killProcess(monitor.subprocess));
  await delay(200);

  const destroyed = await client.destroy("fn-a");
  t.is(destroyed.status, ResourceStatus.TERMINATED);
  // Right at the answer: no link bears the instance's name, none carries its address.
  const shown = await topology.execNode("ip", ["-j", "link", "show", "dev", tapName], { reject: false });
  t.not(shown.exitCode, 0, "ip link show dev <the instance's TAP> fails");
  t.regex(String(shown.stderr), /does not exist/);
  t.false([...ipv4ByLink(await ipAddrs(topology.node)).values()].flat().includes("10.220.0.1/30"), "the host address is off every link");

  // Then the retired TAP is deleted, in the background.
  t.deepEqual(await retiredTapsGone(topology.node), []);
  t.is(await linkAt(topology.node, index), undefined);
  const deleted = await monitor.waitForLine((line) => line.startsWith(`Deleted ${index}: `), 10_000, "the deletion");
  const events = monitor.stdout.filter((line) => new RegExp(`^(Deleted )?${index}: `).test(line));
  t.log(events.join("\n"));
  t.regex(deleted, new RegExp(`^Deleted ${index}: rik-doom-${index.toString(36)}: `), "deleted under its retired name, not the instance's");
  const renamed = events.findIndex((line) => line.startsWith(`${index}: rik-doom-${index.toString(36)}: `));
  t.true(renamed >= 0 && renamed < events.indexOf(deleted), "renamed first");
  t.false(/\bUP\b/.test(events[renamed]!.split("<")[1]?.split(">")[0] ?? ""), "down when renamed");
  t.deepEqual(await kernelDiff(topology.node, [], POOL), []);
});

test("a TAP a guest holds is deleted, never made a spare, and its guest sees the device go; a free one becomes a spare (same ifindex) that the next CREATE takes", async (t) => {
  const { topology, service, client } = await startNode(t, ["--spare-taps", "2"]);
  t.deepEqual((await sparesOnce(topology.node, 2)).map((spare) => spare.ifname), ["rik-spare-0", "rik-spare-1"]);

  // Step 1: fn-held runs with a guest attached to its TAP, as under a VMM.
  const held = await client.create("fn-held", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  const heldIndex = tapLinks(await ipLinks(topology.node)).find((link) => link.ifname === tapOf(held))!.ifindex;
  const guest = await attachGuest(topology.node, held);

  // Step 2: keep the spares below their count: a device under the next spare's name fails the
  // refill after fn-free takes a spare (the next try is 5 s later).
  t.is((await sparesOnce(topology.node, 2)).length, 2);
  await topology.execNode("ip", ["link", "add", "rik-spare-3", "type", "veth", "peer", "name", "rikt-blocker"]);
  const free = await client.create("fn-free", functionDefinition());
  const freeIndex = tapLinks(await ipLinks(topology.node)).find((link) => link.ifname === tapOf(free))!.ifindex;
  await service.waitForLog((entry) => entry.message.startsWith("cannot make a spare TAP") && entry["spare"] === "rik-spare-3", 10_000);
  const sparesBefore = spareTapLinks(await ipLinks(topology.node));
  t.is(sparesBefore.length, 1, "one spare short");

  // Step 3: DESTROY of the held one. Its carrier is on: it is deleted, not adopted.
  t.is((await client.destroy("fn-held")).status, ResourceStatus.TERMINATED);
  // Step 4: DESTROY of the free one, while a spare is still missing: it becomes the spare.
  t.is((await client.destroy("fn-free")).status, ResourceStatus.TERMINATED);
  t.deepEqual(await retiredTapsGone(topology.node), []);

  t.is(await linkAt(topology.node, heldIndex), undefined, "the held TAP is deleted");
  const refused = service.logs().find((entry) => entry.message === "a retired TAP is deleted, not made a spare" && entry["tap"] === `rik-doom-${heldIndex.toString(36)}`);
  t.regex(String(refused?.["reason"]), /carrier is on: something holds it/);
  await guest.relay.closed;
  t.true(guest.relay.stderr.some((line) => line.startsWith("fatal: host->guest: read")), guest.relay.tail());

  const spares = await sparesOnce(topology.node, 2);
  t.false(spares.some((spare) => spare.ifindex === heldIndex), "no spare is the held TAP");
  const recycled = spares.find((spare) => spare.ifindex === freeIndex);
  t.is(recycled?.ifname, "rik-spare-4", "the free TAP, under the next spare name");
  t.false(recycled?.flags.includes("UP"), "down");
  t.like(recycled?.linkinfo?.info_data, { type: "tap", pi: false, vnet_hdr: true, persist: true, user: "root" });
  t.deepEqual(ipv4ByLink(await ipAddrs(topology.node)).get("rik-spare-4"), [], "no address");
  t.deepEqual(await tapIpv6(topology.node, "rik-spare-4"), WITHOUT_IPV6);

  // Step 5: the next CREATE takes the recycled spare, and traffic reaches a guest behind it.
  const next = await client.create("fn-next", functionDefinition({ exposure: { port: 8081, targetPort: 3000 } }));
  const [tap] = tapLinks(await ipLinks(topology.node));
  t.is(tap?.ifname, tapOf(next));
  t.is(tap?.ifindex, freeIndex, "the former fn-free TAP");
  t.true(tap?.flags.includes("UP"));
  const nextGuest = await attachGuest(topology.node, next);
  await startHttpServer(nextGuest.guestNs, 3000, "behind a recycled TAP");
  t.like(await httpGet(topology.world, `http://${topology.nodeIp}:8081/`, 5000), { ok: true, body: "behind a recycled TAP" });
  t.deepEqual(await kernelDiff(topology.node, [next], POOL), []);
});

/**
 * A process that attaches to TAP `tap` in `ns` as a VMM would, then turns its carrier off
 * (TUNSETCARRIER, which needs no privilege): a TAP that looks free and is not.
 */
async function slyHolder(t: ExecutionContext, ns: string, tap: string): Promise<ProcessOutput> {
  const script = `
    import { openSync } from "node:fs";
    import { TAP_FLAGS, tunSetCarrier, tunSetIff } from ${JSON.stringify(TUN_IOCTL)};
    const fd = openSync("/dev/net/tun", "r+");
    tunSetIff(fd, ${JSON.stringify(tap)}, TAP_FLAGS);
    tunSetCarrier(fd, false);
    process.stdout.write("holding\\n");
    process.stdin.resume();
    process.stdin.on("end", () => process.exit(0));
  `;
  const holder = new ProcessOutput(spawnIn(ns, process.execPath, ["--input-type=module", "-e", script]), `holder of ${tap}`);
  t.teardown(() => killProcess(holder.subprocess));
  await holder.waitForLine((line) => line === "holding", 10_000, '"holding"');
  return holder;
}

test("a TAP held by a process that turned its carrier off is still never made a spare: reclaiming it fails, and it is deleted", async (t) => {
  const { topology, service, client } = await startNode(t, ["--spare-taps", "2"]);
  await sparesOnce(topology.node, 2);
  const sly = await client.create("fn-sly", functionDefinition());
  const index = tapLinks(await ipLinks(topology.node)).find((link) => link.ifname === tapOf(sly))!.ifindex;
  await slyHolder(t, topology.node, tapOf(sly));
  const [held] = await ipJson<IpLink[]>(topology.node, ["link", "show", "dev", tapOf(sly)]);
  t.true(held?.flags.includes("NO-CARRIER"), "held, and yet no carrier");

  // Keep the spares below their count, as above.
  t.is((await sparesOnce(topology.node, 2)).length, 2);
  await topology.execNode("ip", ["link", "add", "rik-spare-3", "type", "veth", "peer", "name", "rikt-blocker"]);
  await client.create("fn-other", functionDefinition());
  await service.waitForLog((entry) => entry.message.startsWith("cannot make a spare TAP") && entry["spare"] === "rik-spare-3", 10_000);

  t.is((await client.destroy("fn-sly")).status, ResourceStatus.TERMINATED);
  const refused = await service.waitForLog((entry) => entry.message.startsWith("a retired TAP is still held by a process"), 10_000);
  t.is(refused["index"], index);
  t.regex(String(refused["error"]), /EBUSY/);
  t.deepEqual(await retiredTapsGone(topology.node), []);
  const deleted = async () => (await linkAt(topology.node, index)) === undefined;
  for (const started = Date.now(); !(await deleted()) && Date.now() - started < 10_000; ) await delay(20);
  t.is(await linkAt(topology.node, index), undefined, "deleted under the spare name it was given");
  t.false(spareTapLinks(await ipLinks(topology.node)).some((spare) => spare.ifindex === index), "no spare is the held TAP");
});

test("with every spare ready, a destroyed TAP is deleted and the spares stay as they were", async (t) => {
  const { topology, client } = await startNode(t, ["--spare-taps", "1"]);
  await sparesOnce(topology.node, 1);
  const network = await client.create("fn-a", functionDefinition());
  const index = tapLinks(await ipLinks(topology.node))[0]!.ifindex;
  // The taken spare is made again: whether ready or still on its way, none more is wanted.
  const [refilled] = await sparesOnce(topology.node, 1);
  const before = spareTapLinks(await ipLinks(topology.node)).map((spare) => [spare.ifname, spare.ifindex]);
  t.deepEqual(before, [[refilled!.ifname, refilled!.ifindex]]);

  t.is((await client.destroy("fn-a")).status, ResourceStatus.TERMINATED);
  t.deepEqual(await retiredTapsGone(topology.node), []);
  t.is(await linkAt(topology.node, index), undefined, `${tapOf(network)} is deleted`);
  t.deepEqual(spareTapLinks(await ipLinks(topology.node)).map((spare) => [spare.ifname, spare.ifindex]), before);
});

test("a CREATE of the same id right after its DESTROY gets a working TAP of the same name", async (t) => {
  const { topology, client } = await startNode(t, ["--spare-taps", "0"]);
  const definition = functionDefinition({ exposure: { port: 8080, targetPort: 3000 } });
  const first = await client.create("fn-a", definition);
  const oldIndex = tapLinks(await ipLinks(topology.node))[0]!.ifindex;
  await client.destroy("fn-a");
  const again = await client.create("fn-a", definition);
  t.is(again.status, ResourceStatus.RUNNING);
  t.is(tapOf(again), tapOf(first));
  const [tap] = tapLinks(await ipLinks(topology.node));
  t.is(tap?.ifname, tapOf(again));
  t.not(tap?.ifindex, oldIndex, "a new device: the old one is retired");
  t.true(tap?.flags.includes("UP"));
  t.deepEqual(ipv4ByLink(await ipAddrs(topology.node)).get(tapOf(again)), ["10.220.0.1/30"]);
  const guest = await attachGuest(topology.node, again);
  await startHttpServer(guest.guestNs, 3000, "re-created");
  t.like(await httpGet(topology.world, `http://${topology.nodeIp}:8080/`, 5000), { ok: true, body: "re-created" });
  t.deepEqual(await kernelDiff(topology.node, [again], POOL), []);
});

test("8 concurrent create/destroy cycles, on ids of their own and on one they share: no call fails, each CREATE of an own id finds its TAP up and addressed, and the node ends exact", async (t) => {
  const { topology, client } = await startNode(t, []);
  const CYCLES = 12;
  const failures: string[] = [];
  const check = async (id: string, network: Awaited<ReturnType<WorkloadClient["create"]>>) => {
    const fn = network.network.value!;
    const [link] = await ipJson<IpLink[]>(topology.node, ["link", "show", "dev", fn.tapName]);
    const addresses = ipv4ByLink(await ipJson(topology.node, ["addr", "show", "dev", fn.tapName])).get(fn.tapName);
    if (!link?.flags.includes("UP") || addresses?.[0] !== `${fn.hostIp}/${fn.prefixLength}`) failures.push(`${id}: ${JSON.stringify({ link, addresses })}`);
  };
  const cycle = async (worker: number) => {
    const own = worker < 4;
    const id = own ? `own-${worker}` : "shared";
    for (let i = 0; i < CYCLES; i++) {
      try {
        const created = await client.create(id, functionDefinition({ exposure: { port: 9000 + (own ? worker : 7), targetPort: 80 } }));
        if (created.status !== ResourceStatus.RUNNING) failures.push(`${id}: CREATE answered ${created.status}`);
        if (own) await check(id, created);
        const destroyed = await client.destroy(id);
        if (destroyed.status !== ResourceStatus.TERMINATED) failures.push(`${id}: DESTROY answered ${destroyed.status}`);
      } catch (error) {
        failures.push(`${id}: ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, (_, worker) => cycle(worker)));
  t.deepEqual(failures, []);
  t.deepEqual(await client.list(), []);
  t.deepEqual(await kernelDiff(topology.node, [], POOL), []);
  // And once more, all at once: every id gets its network back.
  const networks = await Promise.all(["own-0", "own-1", "own-2", "own-3", "shared"].map((id) => client.create(id, functionDefinition())));
  t.deepEqual(await kernelDiff(topology.node, networks, POOL), []);
});

test("a service stopped while DESTROYs answer leaves no retired TAP: it finishes their deletion first", async (t) => {
  const { topology, service, client } = await startNode(t, ["--spare-taps", "0"]);
  const ids = Array.from({ length: 16 }, (_, i) => `fn-${i}`);
  const networks = await Promise.all(ids.map((id) => client.create(id, functionDefinition())));
  // SIGTERM as soon as the first DESTROY answers: the others are in flight, or refused once the
  // service shuts down, and the retired TAPs' deletions are under way.
  const destroys = ids.map((id) => client.destroy(id));
  await Promise.race(destroys);
  const stopped = service.stop();
  const outcomes = await Promise.allSettled(destroys);
  t.like(await stopped, { exitCode: 0, forced: false }, "a clean exit");
  client.close();
  t.deepEqual(retiredTapLinks(await ipLinks(topology.node)).map((link) => link.ifname), [], "no retired TAP left");
  // SIGTERM leaves the networks of the instances whose DESTROY it refused, and only those.
  const kept = networks.filter((_, i) => outcomes[i]!.status === "rejected").map((network) => tapOf(network));
  t.deepEqual(tapLinks(await ipLinks(topology.node)).map((link) => link.ifname).sort(), kept.sort());
});
