/**
 * Runs inside a profile namespace (`ip netns exec NS node --import tsx bench/profile-worker.ts
 * '<json>'`): times, one at a time, each kernel step rik-network takes for one CREATE and one
 * DESTROY, with the same code the service runs (src/network), after filling the namespace
 * with `size` instances. Prints one JSON object on stdout.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { CommandLauncher } from "../src/network/kernel/command-launcher.js";
import { InstanceStore, type InstanceRecord } from "../src/network/plane/instance-store.js";
import { Iptables } from "../src/network/firewall/iptables/iptables.js";
import { renderRestore } from "../src/network/firewall/iptables/iptables-rules.js";
import { Rtnetlink } from "../src/network/kernel/rtnetlink/rtnetlink.js";
import { TapCreator } from "../src/network/kernel/tap-creator.js";
import { makeInstances } from "./instances.js";
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

async function main(request: ProfileRequest): Promise<ProfileReport> {
  if (request.firewall !== "iptables") throw new Error(`no profile of the ${request.firewall} backend`);
  const iptables = new Iptables({ restoreCommand: request.restoreCommand, saveCommand: request.saveCommand });
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
  const measure = async <T>(name: string, call: () => T | Promise<T>): Promise<T> => {
    const started = performance.now();
    const value = await call();
    if (recording) (steps[name] ??= []).push(performance.now() - started);
    return value;
  };
  try {
    await iptables.restore(nodeSetupRestore(request.pool));
    const fill = makeInstances(request.pool, { prefix: "fill", count: request.size, firstSlot: 0, firstHostPort: 10_000 });
    if (fill.length > 0) {
      await iptables.restore(fillRestore(fill));
      await execa("ip", ["-batch", "-"], { input: fillTapBatch(fill) });
    }
    const probes = makeInstances(request.pool, { prefix: "prof", count: request.samples, firstSlot: request.size, firstHostPort: 1024 });
    // One unmeasured round first, so that code paths are compiled and caches warm.
    for (const [index, instance] of [probes[0]!, ...probes].entries()) {
      recording = index > 0;
      const rules = rulesOf(instance);
      await measure("spawn /bin/true (node execa)", () => execa("true"));
      await measure("exec /bin/true through the co-process shell (CommandLauncher)", () => launcher.run("/bin/true", []));
      await measure("iptables-restore, empty batch", () => iptables.restore("*filter\nCOMMIT\n"));
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
      await measure("create: iptables-restore append the DNAT", () => iptables.restore(renderRestore({ append: rules })));
      await measure("destroy: iptables-restore delete the DNAT", () => iptables.restore(renderRestore({ delete: rules })));
      await measure("destroy: rtnetlink link del", () => rtnetlink.linkDel(instance.tapName));
      await measure("destroy: state record (journal line, fdatasync)", () => removeRecord(instance.id));
      if (index <= 5) await measure("iptables-save (whole ruleset)", () => iptables.save());
    }
  } finally {
    await iptables.close();
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
