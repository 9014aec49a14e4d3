/**
 * Runs inside a profile namespace (`ip netns exec NS node --import tsx bench/profile-worker.ts
 * '<json>'`): times, one at a time, each kernel step rik-network takes for one CREATE and one
 * DESTROY on one firewall backend, with the same code the service runs (src/network), after
 * filling the namespace with `size` instances. Prints one JSON object on stdout.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { CommandLauncher } from "../src/network/kernel/command-launcher.js";
import { InstanceStore, type InstanceRecord } from "../src/network/plane/instance-store.js";
import { DEFAULT_EGRESS_DENY } from "../src/network/firewall/firewall.js";
import { Iptables } from "../src/network/firewall/iptables/iptables.js";
import { renderRestore } from "../src/network/firewall/iptables/iptables-rules.js";
import { Libnftables } from "../src/network/firewall/nftables/libnftables.js";
import { findNft } from "../src/network/firewall/nftables/nft-firewall.js";
import { chunks, planTable } from "../src/network/firewall/nftables/nft-plan.js";
import { instanceElements, NFT_FAMILY, NFT_TABLE, nodeTable, renderAddElements, renderDeleteElements } from "../src/network/firewall/nftables/nft-rules.js";
import { Rtnetlink } from "../src/network/kernel/rtnetlink/rtnetlink.js";
import { TapCreator } from "../src/network/kernel/tap-creator.js";
import { makeInstances, type BenchInstance } from "./instances.js";
import { fillRestore, fillTapBatch, nodeSetupRestore, rulesOf } from "./kernel-texts.js";

export interface ProfileRequest {
  readonly pool: string;
  readonly size: number;
  readonly samples: number;
  /** Whose firewall steps are timed. */
  readonly firewall: "nft" | "iptables";
  readonly restoreCommand: string;
  readonly saveCommand: string;
  /** Where the worker keeps its state records (a temporary directory of the run). */
  readonly workDir: string;
}

/** Step name to its durations in ms, one per sample. */
export type ProfileSteps = Record<string, number[]>;

export interface ProfileReport {
  readonly size: number;
  readonly steps: ProfileSteps;
  readonly workerRssKb: number;
}

/** What the profile does with one backend: set the node up with the fill, then one instance's add and remove, each step named as the table shows it. */
interface FirewallSteps {
  setUp(fill: readonly BenchInstance[]): Promise<void>;
  /** Steps that are the backend's own but off the create/destroy path (their names start with neither). */
  extras(index: number, measure: Measure): Promise<void>;
  add(instance: BenchInstance, measure: Measure): Promise<void>;
  remove(instance: BenchInstance, measure: Measure): Promise<void>;
  close(): Promise<void>;
}

type Measure = <T>(name: string, call: () => T | Promise<T>) => Promise<T>;

const instanceFirewall = (instance: BenchInstance) => ({
  instanceId: instance.id,
  guestIp: instance.guestIp,
  ports: [{ protocol: "tcp" as const, hostPort: instance.hostPort, guestPort: instance.guestPort }],
});

function iptablesSteps(request: ProfileRequest): FirewallSteps {
  const iptables = new Iptables({ restoreCommand: request.restoreCommand, saveCommand: request.saveCommand });
  return {
    async setUp(fill) {
      await iptables.restore(nodeSetupRestore(request.pool));
      if (fill.length > 0) await iptables.restore(fillRestore(fill));
    },
    async extras(index, measure) {
      await measure("iptables-restore, empty batch", () => iptables.restore("*filter\nCOMMIT\n"));
      if (index <= 5) await measure("iptables-save (whole ruleset)", () => iptables.save());
    },
    add: (instance, measure) => measure("create: iptables-restore append the DNAT", () => iptables.restore(renderRestore({ append: rulesOf(instance) }))),
    remove: (instance, measure) => measure("destroy: iptables-restore delete the DNAT", () => iptables.restore(renderRestore({ delete: rulesOf(instance) }))),
    close: () => iptables.close(),
  };
}

/** The nft backend's own calls: libnftables in this process for the transactions, an exec of `nft -j` for the listing. */
function nftSteps(request: ProfileRequest): FirewallSteps {
  const nft = Libnftables.open();
  const nftCommand = findNft();
  const policy = { pool: request.pool, localhost: true, egressDeny: DEFAULT_EGRESS_DENY };
  return {
    async setUp(fill) {
      const plan = planTable(nodeTable(policy), fill.flatMap((instance) => instanceElements(instanceFirewall(instance))), undefined);
      nft.run("setting the table up", plan.setup);
      for (const slice of chunks(plan.addElements)) nft.run("filling the maps", renderAddElements(slice));
    },
    async extras(index, measure) {
      if (index <= 5) await measure(`nft -j list table ${NFT_FAMILY} ${NFT_TABLE} (exec, as reconcile lists it)`, () => execa(nftCommand, ["-j", "list", "table", NFT_FAMILY, NFT_TABLE]));
    },
    add: (instance, measure) =>
      measure("create: nft add element, libnftables in process (one transaction)", () => nft.run("add", renderAddElements(instanceElements(instanceFirewall(instance))))),
    remove: (instance, measure) =>
      measure("destroy: nft delete element, libnftables in process (one transaction)", () => nft.run("delete", renderDeleteElements(instanceElements(instanceFirewall(instance))))),
    close: async () => nft.close(),
  };
}

async function main(request: ProfileRequest): Promise<ProfileReport> {
  const firewall = request.firewall === "nft" ? nftSteps(request) : iptablesSteps(request);
  const rtnetlink = Rtnetlink.open();
  const taps = new TapCreator();
  // The co-process the service's Iptables runs iptables-restore through, to show what an exec costs there.
  const launcher = new CommandLauncher();
  // Durable state with the service's own store: a journal line, fdatasynced.
  const stateDir = mkdtempSync(path.join(request.workDir, "profile-state-"));
  const store = InstanceStore.open(stateDir);
  store.load();
  const putRecord = (instanceId: string, network: unknown) =>
    store.put({ instanceId, kind: "Function", digest: "profile", status: "running", network: network as InstanceRecord["network"] });
  const removeRecord = (instanceId: string) => store.remove(instanceId);
  const steps: ProfileSteps = {};
  let recording = false;
  const measure: Measure = async <T>(name: string, call: () => T | Promise<T>): Promise<T> => {
    const started = performance.now();
    const value = await call();
    if (recording) (steps[name] ??= []).push(performance.now() - started);
    return value;
  };
  try {
    const fill = makeInstances(request.pool, { prefix: "fill", count: request.size, firstSlot: 0, firstHostPort: 10_000 });
    await firewall.setUp(fill);
    if (fill.length > 0) await execa("ip", ["-batch", "-"], { input: fillTapBatch(fill) });
    const probes = makeInstances(request.pool, { prefix: "prof", count: request.samples, firstSlot: request.size, firstHostPort: 1024 });
    // One unmeasured round first, so that code paths are compiled and caches warm.
    for (const [index, instance] of [probes[0]!, ...probes].entries()) {
      recording = index > 0;
      await measure("spawn /bin/true (node execa)", () => execa("true"));
      await measure("exec /bin/true through the co-process shell (CommandLauncher)", () => launcher.run("/bin/true", []));
      await firewall.extras(index, measure);
      await measure("create: state record (journal line, fdatasync)", () => putRecord(instance.id, instance));
      // The service's path: a spare TAP, made in the background beforehand, renamed into the instance's.
      const spare = `rik-spare-${index}`;
      const spareIndex = await measure("background: spare TAP made (TUNSETIFF+TUNSETPERSIST in the worker, detach, link index)", async () => {
        await (await taps.add(spare)).detached;
        return rtnetlink.linkIndex(spare);
      });
      await measure("create: spare TAP renamed + mtu + route_localnet + up (one request), address (another), at once", () =>
        Promise.all([
          rtnetlink.linkSetUp(spareIndex, { rename: instance.tapName, mtu: 1500, routeLocalnet: true }),
          rtnetlink.addrReplace(spareIndex, instance.hostIp, 30),
        ]),
      );
      // With no spare ready (a burst of CREATEs): the TAP made on the spot, under another name.
      const fresh = `rikfresh${index}`;
      await measure("no spare ready: TAP ioctl in the worker thread (TUNSETIFF+TUNSETPERSIST, then detach)", async () => (await taps.add(fresh)).detached);
      const freshIndex = await measure("no spare ready: rtnetlink link index", () => rtnetlink.linkIndex(fresh));
      await measure("no spare ready: rtnetlink addr replace", () => rtnetlink.addrReplace(freshIndex, "192.0.2.1", 30));
      await measure("no spare ready: rtnetlink link up + mtu + route_localnet", () => rtnetlink.linkSetUp(freshIndex, { mtu: 1500, routeLocalnet: true }));
      await rtnetlink.linkDel(fresh);
      await firewall.add(instance, measure);
      await firewall.remove(instance, measure);
      // The service's DESTROY retires the TAP (RetiredTaps.retire) and deletes it in the background.
      const doomed = `rik-doom-${index.toString(36)}`;
      await measure("destroy: TAP retired: link index, then down + address removed + renamed (three requests at once)", async () => {
        const tapIndex = await rtnetlink.linkIndex(instance.tapName);
        await Promise.all([
          rtnetlink.linkSetDown(tapIndex),
          rtnetlink.addrDel(tapIndex, instance.hostIp, 30),
          rtnetlink.linkRename(tapIndex, doomed),
        ]);
      });
      await measure("background: retired TAP deleted (rtnetlink link del)", () => rtnetlink.linkDel(doomed));
      await measure("destroy: state record (journal line, fdatasync)", () => removeRecord(instance.id));
    }
  } finally {
    await firewall.close();
    await launcher.close();
    await taps.close();
    rtnetlink.close();
    store.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
  const status = readFileSync("/proc/self/status", "utf8");
  const rss = /^VmRSS:\s+(\d+)/m.exec(status);
  return { size: request.size, steps, workerRssKb: Number(rss?.[1] ?? 0) };
}

main(JSON.parse(process.argv[2] ?? "{}") as ProfileRequest).then(
  (report) => {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  },
  (error: unknown) => {
    process.stderr.write(`profile worker: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
