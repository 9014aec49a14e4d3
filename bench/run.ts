/**
 * `npm run bench`: rik-network against a replay of riklet's command sequence, at several
 * numbers of instances already present, each measured in fresh throwaway namespaces.
 *
 * Safety: nothing runs in the root network namespace. Every namespace comes from the test
 * harness (test/helpers/netns.ts), which removes it, and kills every process started in it,
 * when the phase ends, on failure, on exit, and on SIGINT/SIGTERM/SIGHUP. The run stops by
 * itself after --max-minutes, printing what it measured so far.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../src/config/index.js";
import { deleteNamespace, registeredNamespaces, sweepStaleNamespaces } from "../test/helpers/netns.js";
import { binariesFor, measureBaseline, type BaselineResult } from "./baseline-riklet.js";
import { ensureBuilt } from "./compiled-service.js";
import { planInstances, poolCapacity } from "./instances.js";
import { measureRikNetwork, type RikNetworkResult } from "./measure-rik-network.js";
import { OptionsError, parseBenchArgs, usage, type BenchOptions } from "./options.js";
import { profileAt } from "./profile.js";
import type { ProfileReport } from "./profile-worker.js";
import { Progress } from "./progress.js";
import { evaluateTargets, figuresOf, profileRows, renderFigures, renderProfile, renderTargets, type SizeMeasurements } from "./report.js";
import { round, summarize } from "./stats.js";
import { hostInfo, settle, type HostInfo } from "./system.js";

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
  return {
    namespace: result.namespace,
    fillMs: round(result.fillMs),
    create: summaryOf(result.createMs),
    destroy: summaryOf(result.destroyMs),
    concurrentCreateMs: round(result.concurrentCreateMs),
    concurrentDestroyMs: round(result.concurrentDestroyMs),
    list: summaryOf(result.listMs),
    get: summaryOf(result.getMs),
    memoryAtStart: result.memoryAtStart,
    memoryAtSize: result.memoryAtSize,
    restart: { ...result.restart, stopMs: round(result.restart.stopMs), readyMs: round(result.restart.readyMs) },
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

function toMeasurements(size: number, rik: RikNetworkResult | undefined, baseline: BaselineResult | undefined): SizeMeasurements {
  return {
    size,
    ...(rik === undefined
      ? {}
      : {
          rik: {
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
          },
        }),
    ...(baseline === undefined
      ? {}
      : {
          baseline: {
            createMs: baseline.createMs,
            destroyMs: baseline.destroyMs,
            concurrentCreate: baseline.concurrentCreate,
            concurrentDestroy: baseline.concurrentDestroy,
          },
        }),
  };
}

/** Everything measured so far; rendered (table + JSON) at the end, or early when the time limit strikes. */
class Results {
  readonly startedAt = new Date();
  readonly notes: string[] = [];
  readonly errors: string[] = [];
  readonly measurements: SizeMeasurements[] = [];
  readonly raw: Record<string, unknown> = {};
  readonly profiles: ProfileReport[] = [];
  readonly settling: Record<string, unknown> = {};
  host: HostInfo | undefined;
  /** The service runs on the baseline's iptables backend. */
  readonly serviceArgs: readonly string[];

  constructor(private readonly options: BenchOptions) {
    this.serviceArgs = ["--iptables-backend", options.backend];
  }

  /** The table (stdout) and the JSON document of what was measured. */
  render(complete: boolean): { text: string; json: unknown } {
    const { options } = this;
    const finishedAt = new Date();
    const figures = figuresOf(this.measurements, options.concurrent);
    const measuredSizes = this.measurements.map((m) => m.size);
    const defaultPool = loadConfig([], {}).pool;
    const targets =
      measuredSizes.length === 0
        ? []
        : evaluateTargets({ figures, sizes: measuredSizes, concurrent: options.concurrent, defaultPoolCapacity: poolCapacity(defaultPool) });
    const rows = profileRows(this.profiles);
    const profileSizes = this.profiles.map((p) => p.size);
    const method = [
      `rik-network: the real service, compiled (node dist/main.js serve, --pool ${options.pool}, log level warn, own --state-dir, ${this.serviceArgs.join(" ")}, other flags at their defaults) in a fresh namespace; latency timed in this process around each gRPC call on the unix socket.`,
      `baseline: riklet's command sequence (15 execs per create, 7 per destroy) run and timed by one bash process inside its own fresh namespace (no ip netns exec per command); iptables backend ${options.backend}; concurrent batches capped at ${options.baselineCapSeconds} s.`,
      `each size: fill (not measured; rik-network over gRPC with ${options.fillConcurrency} in flight, baseline with one iptables-restore + one ip -batch), ${options.warmup} warm-up pairs, ${options.samples} sequential create+destroy pairs of exposed instances (rik-network: 1 DNAT each; baseline: riklet's 3 rules each), ${options.concurrent} concurrent creates then destroys.`,
      "restart: SIGTERM, then spawn `node dist/main.js serve` again on the same socket and state dir, until the health check says SERVING; the reconcile part is the service's own log.",
      "percentiles are nearest-rank; ratio = rik-network / baseline, speed-up = baseline / rik-network.",
    ];
    const host = this.host;
    const text = [
      "",
      `rik-network vs riklet command sequence${complete ? "" : " (INCOMPLETE: stopped early)"} — ${host?.cpus ?? "?"} CPUs (${host?.cpuModel ?? "?"}), kernel ${host?.kernel ?? "?"}, ${host?.iptables ?? "?"}`,
      `backend: baseline ${options.backend}, rik-network ${options.backend}; ${options.samples} samples per size; run took ${round((finishedAt.getTime() - this.startedAt.getTime()) / 1000)} s`,
      "",
      renderFigures(figures),
      "",
      renderTargets(targets),
      ...(rows.length === 0
        ? []
        : [
            "",
            `Profile: each step of one create/destroy timed alone (${options.profileSamples} samples, same src/network code as the service, ${options.backend}); the rest is gRPC, JSON and service bookkeeping`,
            renderProfile(rows, profileSizes, figures),
          ]),
      "",
      "Method:",
      ...method.map((line) => `  - ${line}`),
      ...(this.notes.length === 0 ? [] : ["", "Notes:", ...this.notes.map((note) => `  - ${note}`)]),
      ...(this.errors.length === 0 ? [] : ["", "Errors (phases that did not complete):", ...this.errors.map((error) => `  - ${error.split("\n")[0]}`)]),
      "",
    ].join("\n");
    const json = {
      schema: "rik-network-bench/1",
      complete,
      startedAt: this.startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      host,
      options: { ...options, out: undefined, help: undefined },
      backends: { rikNetwork: options.backend, baseline: options.backend, serviceArgs: this.serviceArgs },
      defaultPool: { cidr: defaultPool, capacity: poolCapacity(defaultPool) },
      method,
      figures,
      targets,
      profile: { sizes: profileSizes, workerRssKb: this.profiles.map((p) => p.workerRssKb), rows },
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

async function run(options: BenchOptions, results: Results, progress: Progress, workDir: string): Promise<number> {
  const { notes, errors } = results;
  const hostStateDirExisted = fs.existsSync(HOST_STATE_DIR);
  const swept = await sweepStaleNamespaces();
  if (swept.length > 0) progress.step(`removed namespaces left by a crashed run: ${swept.join(", ")}`);
  const host = await hostInfo();
  results.host = host;
  progress.step(`${host.cpus} CPUs, kernel ${host.kernel}, node ${host.node}, ${host.iptables}; load average ${host.loadAverage.join(" ")}`);
  if (host.loadAverage[0]! > host.cpus / 2) notes.push(`the machine was busy at start (load average ${host.loadAverage.join(" ")}): figures may be noisy`);

  // The service runs compiled, as deployed; build it first when src/ is newer than dist/.
  if (await ensureBuilt((line) => progress.step(line))) notes.push("dist/ was rebuilt from src/ (npm run build) before the run");
  const rikSave = binariesFor(options.backend).save;

  const quietness = async (before: string) => {
    const settled = await settle({ maxMs: options.settleMaxSeconds * 1000 });
    results.settling[before] = { quiet: settled.quiet, idle: round(settled.idle), waitedMs: Math.round(settled.waitedMs), loadAverage: os.loadavg().map(round) };
    if (!settled.quiet) {
      notes.push(`before ${before} the CPUs were only ${Math.round(settled.idle * 100)}% idle after ${Math.round(settled.waitedMs / 1000)} s of waiting (other load on the machine)`);
    }
  };

  for (const size of options.sizes) {
    const plan = planInstances({ pool: options.pool, size, warmup: options.warmup, samples: options.samples, concurrent: options.concurrent });
    let rik: RikNetworkResult | undefined;
    let baseline: BaselineResult | undefined;
    const record = () => {
      const at = results.measurements.findIndex((m) => m.size === size);
      const measurement = toMeasurements(size, rik, baseline);
      if (at === -1) results.measurements.push(measurement);
      else results.measurements[at] = measurement;
      results.raw[String(size)] = {
        ...(rik === undefined ? {} : { rikNetwork: rawRik(rik) }),
        ...(baseline === undefined ? {} : { baseline: rawBaseline(baseline) }),
      };
      results.emit(false, false, progress);
    };
    try {
      await quietness(`rik-network @${size}`);
      rik = await measureRikNetwork({
        pool: options.pool,
        size,
        plan,
        fillConcurrency: options.fillConcurrency,
        serviceArgs: results.serviceArgs,
        saveCommand: rikSave,
        workDir,
        progress,
      });
      progress.step(
        `rik-network @${size}: create p50 ${round(summarize(rik.createMs)?.p50 ?? NaN)} ms, destroy p50 ${round(summarize(rik.destroyMs)?.p50 ?? NaN)} ms, restart ${round(rik.restart.readyMs)} ms`,
      );
      record();
    } catch (error) {
      errors.push(`rik-network @${size}: ${(error as Error).stack ?? String(error)}`);
      progress.step(`rik-network @${size} FAILED: ${(error as Error).message}`);
    }
    if (!options.skipBaseline) {
      try {
        await quietness(`baseline @${size}`);
        baseline = await measureBaseline({
          pool: options.pool,
          backend: options.backend,
          size,
          plan,
          scriptDir: workDir,
          capMs: options.baselineCapSeconds * 1000,
          progress,
        });
        progress.step(
          `baseline @${size}: create p50 ${round(summarize(baseline.createMs)?.p50 ?? NaN)} ms, destroy p50 ${round(summarize(baseline.destroyMs)?.p50 ?? NaN)} ms`,
        );
        record();
      } catch (error) {
        errors.push(`baseline @${size}: ${(error as Error).stack ?? String(error)}`);
        progress.step(`baseline @${size} FAILED: ${(error as Error).message}`);
      }
    }
    for (const [side, failures] of [
      ["rik-network", rik?.failures ?? []],
      ["baseline", baseline?.failures ?? []],
    ] as const) {
      if (failures.length > 0) notes.push(`${side} @${size}: ${failures.length} failed operations, e.g. ${failures.slice(0, 3).join(" | ")}`);
    }
    if (baseline?.concurrentCreate?.capped === true) {
      notes.push(`baseline @${size}: the ${options.concurrent} concurrent creates were stopped after ${options.baselineCapSeconds} s (figure is a lower bound); the concurrent destroys were not run`);
    }
    if (rik !== undefined && rik.restart.recovered !== rik.restart.expected) {
      notes.push(`rik-network @${size}: after the restart List returned ${rik.restart.recovered} of ${rik.restart.expected} instances`);
    }
  }

  if (!options.skipProfile) {
    for (const size of [...new Set([Math.min(...options.sizes), Math.max(...options.sizes)])]) {
      try {
        await quietness(`profile @${size}`);
        results.profiles.push(
          await profileAt(size, { pool: options.pool, samples: options.profileSamples, backend: options.backend, workDir, progress }),
        );
        results.emit(false, false, progress);
      } catch (error) {
        errors.push(`profile @${size}: ${(error as Error).stack ?? String(error)}`);
        progress.step(`profile @${size} FAILED: ${(error as Error).message}`);
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
