/**
 * `npm run bench`: rik-network on each of its firewall backends (nft, iptables) against a replay
 * of riklet's command sequence, at several numbers of instances already present, each measured
 * in fresh throwaway namespaces, all in one run.
 *
 * Safety: nothing runs in the root network namespace. Every namespace comes from the test
 * harness (test/helpers/netns.ts), which removes it, and kills every process started in it,
 * when the phase ends, on failure, on exit, and on SIGINT/SIGTERM/SIGHUP. The run stops by
 * itself after --max-minutes, printing what it measured so far.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { options as serviceOptions } from "../src/config/options.js";
import { deleteNamespace, registeredNamespaces, sweepStaleNamespaces } from "../test/helpers/netns.js";
import { binariesFor, measureBaseline, type BaselineResult } from "./baseline-riklet.js";
import { ensureBuilt } from "./compiled-service.js";
import { slowestSecond } from "./churn.js";
import { planInstances } from "./instances.js";
import { measureRikNetwork, type RikNetworkResult } from "./measure-rik-network.js";
import { OptionsError, parseBenchArgs, serviceArgsFor, usage, type BenchOptions, type FirewallBackend } from "./options.js";
import { profileAt } from "./profile.js";
import type { ProfileReport } from "./profile-worker.js";
import { Progress } from "./progress.js";
import {
  evaluateTargets,
  figuresOf,
  profileRows,
  renderFigures,
  renderProfile,
  renderTable,
  renderTargets,
  type RikMeasurements,
  type SizeMeasurements,
} from "./report.js";
import { round, summarize } from "./stats.js";
import { hostInfo, settle, withoutPackageBins, type HostInfo } from "./system.js";

/** The service's default state directory: every service we start gets its own instead, so this must not appear. */
const HOST_STATE_DIR = "/var/lib/rik-network";

function summaryOf(samples: readonly number[]) {
  const summary = summarize(samples);
  return summary === undefined
    ? null
    : { count: summary.count, p50: round(summary.p50), p99: round(summary.p99), mean: round(summary.mean), min: round(summary.min), max: round(summary.max) };
}

const rounded = (samples: readonly number[]) => samples.map(round);

function rawRik(result: RikNetworkResult) {
  const { churn, datapath } = result;
  return {
    namespace: result.namespace,
    firewall: result.firewall,
    fillMs: round(result.fillMs),
    partsMs: Object.fromEntries(Object.entries(result.partsMs).map(([name, ms]) => [name, round(ms)])),
    create: summaryOf(result.createMs),
    destroy: summaryOf(result.destroyMs),
    concurrentCreateMs: round(result.concurrentCreateMs),
    concurrentDestroyMs: round(result.concurrentDestroyMs),
    list: summaryOf(result.listMs),
    get: summaryOf(result.getMs),
    memoryAtStart: result.memoryAtStart,
    memoryAtSize: result.memoryAtSize,
    restart: { ...result.restart, stopMs: round(result.restart.stopMs), readyMs: round(result.restart.readyMs) },
    churn:
      churn === undefined
        ? null
        : {
            inFlight: churn.inFlight,
            elapsedMs: round(churn.elapsedMs),
            cycles: churn.cycles,
            perSecond: churn.perSecond,
            cpu: { servicePercent: round(churn.cpu.servicePercent), benchPercent: round(churn.cpu.benchPercent), machinePercent: round(churn.cpu.machinePercent) },
            create: summaryOf(churn.createMs),
            destroy: summaryOf(churn.destroyMs),
            failures: churn.failures,
            listed: churn.listed,
            expected: churn.expected,
            kernel: { ...churn.kernel, exactAfterMs: churn.kernel.exactAfterMs === undefined ? null : round(churn.kernel.exactAfterMs) },
          },
    datapath:
      datapath === undefined
        ? null
        : {
            hostPort: datapath.hostPort,
            exposed: { alone: datapath.exposedA, beside: datapath.exposedB },
            alone: summaryOf(datapath.a),
            beside: summaryOf(datapath.b),
            failures: datapath.failures,
            samples: { aloneMs: rounded(datapath.a), besideMs: rounded(datapath.b) },
          },
    failures: result.failures,
    samples: { createMs: rounded(result.createMs), destroyMs: rounded(result.destroyMs) },
  };
}

function rawBaseline(result: BaselineResult) {
  return {
    namespace: result.namespace,
    fillMs: round(result.fillMs),
    execsPerCreate: result.execsPerCreate,
    execsPerDestroy: result.execsPerDestroy,
    create: summaryOf(result.createMs),
    destroy: summaryOf(result.destroyMs),
    concurrentCreate: result.concurrentCreate ?? null,
    concurrentDestroy: result.concurrentDestroy ?? null,
    failures: result.failures,
    samples: { createMs: rounded(result.createMs), destroyMs: rounded(result.destroyMs) },
  };
}

function rikMeasurements(rik: RikNetworkResult): RikMeasurements {
  const { churn, datapath } = rik;
  return {
    createMs: rik.createMs,
    destroyMs: rik.destroyMs,
    concurrentCreateMs: rik.concurrentCreateMs,
    concurrentDestroyMs: rik.concurrentDestroyMs,
    restartReadyMs: rik.restart.readyMs,
    reconcileMs: rik.restart.reconcileMs,
    recovered: rik.restart.recovered,
    rssKb: rik.memoryAtSize.rssKb,
    listMs: rik.listMs,
    getMs: rik.getMs,
    ...(churn === undefined
      ? {}
      : {
          churn: {
            elapsedMs: churn.elapsedMs,
            cycles: churn.cycles,
            slowestSecond: slowestSecond(churn),
            createMs: churn.createMs,
            destroyMs: churn.destroyMs,
            failures: churn.failures.length,
            leftInList: churn.listed - churn.expected,
            kernelDifferences: churn.kernel.differences.length,
            kernelExactAfterMs: churn.kernel.exactAfterMs,
            cpu: churn.cpu,
          },
        }),
    ...(datapath === undefined ? {} : { datapath: { aloneMs: datapath.a, besideMs: datapath.b, exposed: datapath.exposedB, failures: datapath.failures.length } }),
  };
}

function baselineMeasurements(baseline: BaselineResult): NonNullable<SizeMeasurements["baseline"]> {
  return {
    createMs: baseline.createMs,
    destroyMs: baseline.destroyMs,
    concurrentCreate: baseline.concurrentCreate,
    concurrentDestroy: baseline.concurrentDestroy,
  };
}

/** Everything measured so far; rendered (table + JSON) at the end, or early when the time limit strikes. */
class Results {
  readonly startedAt = new Date();
  readonly notes: string[] = [];
  readonly errors: string[] = [];
  readonly measurements: SizeMeasurements[] = [];
  readonly raw: Record<string, Record<string, unknown>> = {};
  readonly profiles: (ProfileReport & { firewall: FirewallBackend })[] = [];
  readonly settling: Record<string, unknown> = {};
  /** Wall time of each phase, in the order they ran. */
  readonly phases: { name: string; seconds: number }[] = [];
  host: HostInfo | undefined;
  /** The service's flags for each firewall backend. */
  serviceArgs: Partial<Record<FirewallBackend, readonly string[]>> = {};

  constructor(private readonly options: BenchOptions) {}

  /** The entry of `size`, made on first use. */
  at(size: number): SizeMeasurements & { rik: Partial<Record<FirewallBackend, RikMeasurements>> } {
    let entry = this.measurements.find((m) => m.size === size);
    if (entry === undefined) {
      entry = { size, rik: {} };
      this.measurements.push(entry);
    }
    return entry as SizeMeasurements & { rik: Partial<Record<FirewallBackend, RikMeasurements>> };
  }

  record(size: number, side: string, raw: unknown, update: (entry: SizeMeasurements & { rik: Partial<Record<FirewallBackend, RikMeasurements>> }) => void): void {
    const entry = this.at(size);
    update(entry);
    (this.raw[String(size)] ??= {})[side] = raw;
  }

  /** The table (stdout) and the JSON document of what was measured. */
  render(complete: boolean): { text: string; json: unknown } {
    const { options } = this;
    const finishedAt = new Date();
    const figureOptions = { concurrent: options.concurrent, churnSeconds: options.churnSeconds, churnInFlight: options.churnInFlight };
    const figures = figuresOf(this.measurements, options.firewalls, figureOptions);
    const measuredSizes = this.measurements.map((m) => m.size);
    const targets =
      measuredSizes.length === 0
        ? []
        : evaluateTargets({ figures, sizes: measuredSizes, firewalls: options.firewalls, ...figureOptions });
    const profiles = options.firewalls.flatMap((firewall) => {
      const mine = this.profiles.filter((p) => p.firewall === firewall);
      return mine.length === 0 ? [] : [{ firewall, sizes: mine.map((p) => p.size), workerRssKb: mine.map((p) => p.workerRssKb), rows: profileRows(mine) }];
    });
    const flags = options.firewalls.map((firewall) => `${firewall}: ${(this.serviceArgs[firewall] ?? []).join(" ")}`).join("; ");
    const method = [
      `rik-network: the real service, compiled (node dist/main.js serve, --pool ${options.pool}, log level warn, own --state-dir, other flags at their defaults) in the node namespace of a fresh topology per size and firewall backend (${flags}); latency timed in this process around each gRPC call on the unix socket.`,
      `baseline (riklet): riklet's command sequence (15 execs per create, 7 per destroy) run and timed by one bash process inside its own fresh namespace (no ip netns exec per command); iptables binaries ${options.iptablesBackend}; concurrent batches capped at ${options.baselineCapSeconds} s.`,
      `each size: fill (not measured; rik-network over gRPC with ${options.fillConcurrency} in flight, baseline with one iptables-restore + one ip -batch), ${options.warmup} warm-up pairs, ${options.samples} sequential create+destroy pairs of exposed instances (rik-network: 1 DNAT each; baseline: riklet's 3 rules each), ${options.concurrent} concurrent creates then destroys.`,
      `churn: ${options.churnInFlight} slots, each running create+destroy cycles back to back (a new instance id every cycle, the slot's host port) for ${options.churnSeconds} s; then List is compared with the kernel (TAPs, their addresses, the backend's DNATs, nothing of the other backend), again every 250 ms for up to 20 s while the service finishes background work.`,
      `data path: a guest namespace behind an instance's TAP (attached as a VMM attaches) serves TCP; a client in the world namespace times TCP connect + one request + its answer through the node's address and the exposed port (DNAT), ${options.datapathSamples} times on the size's node and as many on a reference node of the same backend with that instance alone (same host port), in turn A B B A; the ratio is p50 on the size's node / p50 on the reference.`,
      "restart: SIGTERM, then spawn `node dist/main.js serve` again on the same socket and state dir, until the health check says SERVING; the reconcile part is the service's own log.",
      "percentiles are nearest-rank; speed-up = riklet / rik-network.",
    ];
    const host = this.host;
    const took = round((finishedAt.getTime() - this.startedAt.getTime()) / 1000);
    const text = [
      "",
      `rik-network (${options.firewalls.join(", ")}) vs riklet command sequence${complete ? "" : " (INCOMPLETE: stopped early)"} — ${host?.cpus ?? "?"} CPUs (${host?.cpuModel ?? "?"}), kernel ${host?.kernel ?? "?"}, ${host?.iptables ?? "?"}, ${host?.nft ?? "?"}`,
      `firewall backends: ${options.firewalls.join(", ")} (targets judged on ${options.firewalls[0]}); iptables binaries ${options.iptablesBackend}; ${options.samples} samples per size; run took ${took} s (${round(took / 60)} min)`,
      "",
      renderFigures(figures, options.firewalls),
      "",
      renderTargets(targets),
      ...profiles.flatMap((profile) => [
        "",
        `Profile, ${profile.firewall} backend: each step of one create/destroy timed alone (${options.profileSamples} samples, same src/network code as the service); the rest is gRPC, JSON and service bookkeeping`,
        renderProfile(profile.rows, profile.sizes, figures, profile.firewall),
      ]),
      ...(this.phases.length === 0 ? [] : ["", renderTable(["phase", "seconds"], this.phases.map((phase) => [phase.name, String(phase.seconds)]))]),
      "",
      "Method:",
      ...method.map((line) => `  - ${line}`),
      ...(this.notes.length === 0 ? [] : ["", "Notes:", ...this.notes.map((note) => `  - ${note}`)]),
      ...(this.errors.length === 0 ? [] : ["", "Errors (phases that did not complete):", ...this.errors.map((error) => `  - ${error.split("\n")[0]}`)]),
      "",
    ].join("\n");
    const json = {
      schema: "rik-network-bench/2",
      complete,
      startedAt: this.startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      tookSeconds: took,
      host,
      options: { ...options, out: undefined, help: undefined },
      backends: { firewalls: options.firewalls, judged: options.firewalls[0], iptablesBinaries: options.iptablesBackend, serviceArgs: this.serviceArgs },
      method,
      figures,
      targets,
      profiles,
      phases: this.phases,
      raw: this.raw,
      settling: this.settling,
      notes: this.notes,
      errors: this.errors,
    };
    return { text, json };
  }

  /** Writes the JSON to --out; prints the table too when `print`. Synchronous, so it also works from a timer before exit. */
  emit(complete: boolean, print: boolean, progress: Progress): void {
    const { text, json } = this.render(complete);
    const outPath = path.resolve(this.options.out);
    fs.writeFileSync(outPath, `${JSON.stringify(json, null, 2)}\n`);
    if (print) {
      process.stdout.write(text);
      progress.step(`wrote ${outPath}`);
    }
  }
}

/** Whether the service under test has `--firewall-backend` (the nft backend came with it). */
function serviceHasFirewallFlag(): boolean {
  return Object.values(serviceOptions).some((option) => (option.flag as string) === "firewall-backend");
}

async function run(options: BenchOptions, results: Results, progress: Progress, workDir: string): Promise<number> {
  const { notes, errors } = results;
  const hostStateDirExisted = fs.existsSync(HOST_STATE_DIR);
  const swept = await sweepStaleNamespaces();
  if (swept.length > 0) progress.step(`removed namespaces left by a crashed run: ${swept.join(", ")}`);
  const host = await hostInfo();
  results.host = host;
  progress.step(`${host.cpus} CPUs, kernel ${host.kernel}, node ${host.node}, ${host.iptables}, ${host.nft}; load average ${host.loadAverage.join(" ")}`);
  // The load average lags by minutes (and counts tasks waiting on the kernel); the CPUs' idle time over one second is what the run starts with.
  const atStart = await settle({ maxMs: 0, windowMs: 1000 });
  if (!atStart.quiet) {
    notes.push(`the machine was busy at start (CPUs ${Math.round(atStart.idle * 100)}% idle, load average ${host.loadAverage.join(" ")}): figures may be noisy`);
  }

  // The service runs compiled, as deployed; build it first when src/ is newer than dist/.
  if (await ensureBuilt((line) => progress.step(line))) notes.push("dist/ was rebuilt from src/ (npm run build) before the run");
  const hasFirewallFlag = serviceHasFirewallFlag();
  const firewalls = options.firewalls.filter((firewall) => {
    try {
      results.serviceArgs[firewall] = serviceArgsFor(firewall, options.iptablesBackend, hasFirewallFlag);
      return true;
    } catch (error) {
      if (!(error instanceof OptionsError)) throw error;
      errors.push(`${firewall}: ${error.message}`);
      return false;
    }
  });
  const rikSave = binariesFor(options.iptablesBackend).save;

  const quietness = async (before: string) => {
    const settled = await settle({ maxMs: options.settleMaxSeconds * 1000 });
    results.settling[before] = { quiet: settled.quiet, idle: round(settled.idle), waitedMs: Math.round(settled.waitedMs), loadAverage: os.loadavg().map(round) };
    if (!settled.quiet) {
      notes.push(`before ${before} the CPUs were only ${Math.round(settled.idle * 100)}% idle after ${Math.round(settled.waitedMs / 1000)} s of waiting (other load on the machine)`);
    }
  };
  /** Runs one phase: waits for quiet, times it, and turns a crash into an error line. */
  const phase = async (name: string, body: () => Promise<void>) => {
    const started = performance.now();
    try {
      await quietness(name);
      await body();
    } catch (error) {
      errors.push(`${name}: ${(error as Error).stack ?? String(error)}`);
      progress.step(`${name} FAILED: ${(error as Error).message}`);
    } finally {
      results.phases.push({ name, seconds: round((performance.now() - started) / 1000) });
      results.emit(false, false, progress);
    }
  };

  for (const size of options.sizes) {
    const plan = planInstances({ pool: options.pool, size, warmup: options.warmup, samples: options.samples, concurrent: options.concurrent });
    // Backends in turn at each size, so that a drift in the machine's load over the run does not favour one.
    for (const firewall of firewalls) {
      const name = `rik-network ${firewall} @${size}`;
      await phase(name, async () => {
        const rik = await measureRikNetwork({
          pool: options.pool,
          size,
          plan,
          fillConcurrency: options.fillConcurrency,
          firewall,
          serviceArgs: results.serviceArgs[firewall]!,
          saveCommand: rikSave,
          churnSeconds: options.churnSeconds,
          churnInFlight: options.churnInFlight,
          datapathSamples: options.datapathSamples,
          workDir,
          progress,
        });
        progress.step(
          `${name}: create p50 ${round(summarize(rik.createMs)?.p50 ?? NaN)} ms, destroy p50 ${round(summarize(rik.destroyMs)?.p50 ?? NaN)} ms, restart ${round(rik.restart.readyMs)} ms`,
        );
        results.record(size, firewall, rawRik(rik), (entry) => {
          entry.rik[firewall] = rikMeasurements(rik);
        });
        if (rik.failures.length > 0) notes.push(`${name}: ${rik.failures.length} failed operations, e.g. ${rik.failures.slice(0, 3).join(" | ")}`);
        if (rik.restart.recovered !== rik.restart.expected) {
          notes.push(`${name}: after the restart List returned ${rik.restart.recovered} of ${rik.restart.expected} instances`);
        }
        if (rik.churn !== undefined && rik.churn.kernel.differences.length > 0) {
          notes.push(`${name}: after the churn the kernel differed from List in ${rik.churn.kernel.differences.length} ways, e.g. ${rik.churn.kernel.differences.slice(0, 3).join(" | ")}`);
        }
      });
    }
    if (!options.skipBaseline) {
      await phase(`baseline @${size}`, async () => {
        const baseline = await measureBaseline({
          pool: options.pool,
          backend: options.iptablesBackend,
          size,
          plan,
          scriptDir: workDir,
          capMs: options.baselineCapSeconds * 1000,
          progress,
        });
        progress.step(
          `baseline @${size}: create p50 ${round(summarize(baseline.createMs)?.p50 ?? NaN)} ms, destroy p50 ${round(summarize(baseline.destroyMs)?.p50 ?? NaN)} ms`,
        );
        results.record(size, "baseline", rawBaseline(baseline), (entry) => {
          (entry as { baseline?: SizeMeasurements["baseline"] }).baseline = baselineMeasurements(baseline);
        });
        if (baseline.failures.length > 0) notes.push(`baseline @${size}: ${baseline.failures.length} failed operations, e.g. ${baseline.failures.slice(0, 3).join(" | ")}`);
        if (baseline.concurrentCreate?.capped === true) {
          notes.push(`baseline @${size}: the ${options.concurrent} concurrent creates were stopped after ${options.baselineCapSeconds} s (figure is a lower bound); the concurrent destroys were not run`);
        } else if (baseline.concurrentDestroy?.capped === true) {
          notes.push(`baseline @${size}: the ${options.concurrent} concurrent destroys were stopped after ${options.baselineCapSeconds} s (figure is a lower bound)`);
        }
      });
    }
  }

  if (!options.skipProfile) {
    for (const firewall of firewalls) {
      for (const size of [...new Set([Math.min(...options.sizes), Math.max(...options.sizes)])]) {
        await phase(`profile ${firewall} @${size}`, async () => {
          const report = await profileAt(size, { pool: options.pool, samples: options.profileSamples, firewall, backend: options.iptablesBackend, workDir, progress });
          results.profiles.push({ ...report, firewall });
        });
      }
    }
  }

  if (!hostStateDirExisted && fs.existsSync(HOST_STATE_DIR)) {
    notes.push(`${HOST_STATE_DIR} appeared during the run: some service ignored --state-dir (left in place, check it)`);
  }
  results.emit(true, true, progress);
  return errors.length === 0 ? 0 : 1;
}

/**
 * Removes `dir` on exit and on the signals the harness handles. The harness's own handlers
 * re-raise the signal once they have cleaned up; this one does the same, so the process
 * still dies of the signal once every handler has run.
 */
function removeOnExit(dir: string): void {
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  process.on("exit", remove);
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    handlers.set(signal, () => {
      remove();
      for (const [name, handler] of handlers) process.removeListener(name, handler);
      process.kill(process.pid, signal);
    });
  }
  for (const [signal, handler] of handlers) process.on(signal, handler);
}

async function main(): Promise<void> {
  // Every command the bench and the services it starts run must be the system's, not a package's.
  process.env.PATH = withoutPackageBins(process.env.PATH ?? "");
  let options: BenchOptions;
  try {
    options = parseBenchArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof OptionsError)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${usage}`);
    process.exit(2);
  }
  if (options.help) {
    process.stdout.write(usage);
    return;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write("bench: needs root (it creates network namespaces, TAPs and iptables rules inside them)\n");
    process.exit(2);
  }
  const progress = new Progress();
  // Scripts, sockets and state directories of this run; removed on exit, Ctrl-C included.
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-bench-"));
  removeOnExit(workDir);
  const results = new Results(options);
  const limit = setTimeout(() => {
    progress.step(`time limit of ${options.maxMinutes} minutes reached: printing what was measured, cleaning up, exiting`);
    try {
      results.emit(false, true, progress);
    } finally {
      // process.exit runs the harness's exit handler, which kills our processes and deletes our namespaces.
      process.exit(1);
    }
  }, options.maxMinutes * 60_000);
  try {
    process.exitCode = await run(options, results, progress, workDir);
  } finally {
    clearTimeout(limit);
    const left = registeredNamespaces();
    if (left.length > 0) await Promise.allSettled(left.map((name) => deleteNamespace(name)));
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
