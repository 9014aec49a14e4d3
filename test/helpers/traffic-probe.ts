/**
 * Background HTTP traffic from inside a test namespace, recorded request by request, to tell
 * whether (and when) guests stopped answering while something else happens, e.g. the service
 * restarting. ONE process (`traffic-probe-runner.ts`) makes all the requests, so the load
 * costs no process start per request and timings are not skewed by them.
 */
import { fileURLToPath } from "node:url";
import { hasExited, killProcess, REPO_ROOT, spawnIn, type NsProcess } from "./netns.js";
import { ProcessOutput } from "./process-output.js";
import type { ProbeRecord, ProbeRunnerConfig, ProbeRunnerDone, ProbeRunnerTarget } from "./traffic-probe-runner.js";

export type { ProbeRecord };
export type ProbeTarget = ProbeRunnerTarget;

const RUNNER_SCRIPT = fileURLToPath(new URL("./traffic-probe-runner.ts", import.meta.url));
/** The config travels as one argv string, which Linux caps at 128 KiB. */
const MAX_CONFIG_BYTES = 100_000;

export interface TrafficProbeOptions {
  /** Namespace the requests start from (one this harness created, e.g. a topology's `world`). */
  readonly ns: string;
  readonly targets: readonly ProbeTarget[];
  /** One request starts every `intervalMs`, round-robin over the targets. Default 10. */
  readonly intervalMs?: number;
  /** Per request; a request without a full answer by then fails with ETIMEDOUT. Default 1000. */
  readonly timeoutMs?: number;
  /** The probe stops itself after this long, stopped or not. Default 60 s. */
  readonly maxDurationMs?: number;
  /** Ticks finding this many requests outstanding are skipped (counted in `skipped()`). Default 64. */
  readonly maxInFlight?: number;
}

export interface TrafficProbe {
  /** When the first request was due, ms since the epoch (records' `at` use the same clock). */
  readonly startedAt: number;
  /** Records of the requests finished so far, in order of completion. */
  records(): ProbeRecord[];
  /** Resolves with the records once `test(records)` holds; rejects after `timeoutMs` or if the probe ends first. */
  waitFor(test: (records: readonly ProbeRecord[]) => boolean, timeoutMs: number): Promise<ProbeRecord[]>;
  /** Ticks skipped because `maxInFlight` requests were outstanding (known once the probe ended). */
  skipped(): number;
  /**
   * Stops starting requests, waits for the outstanding ones (at most `timeoutMs`) and resolves
   * with every record. Idempotent; also fine after the probe stopped itself.
   */
  stop(): Promise<ProbeRecord[]>;
  /** Resolves with every record when the probe ends, on `stop()` or after `maxDurationMs`. */
  readonly finished: Promise<ProbeRecord[]>;
}

/** Starts the probe; resolves once its process runs and the first request is under way. */
export async function startTrafficProbe(options: TrafficProbeOptions): Promise<TrafficProbe> {
  const timeoutMs = options.timeoutMs ?? 1000;
  const runner = startRunner(options.ns, {
    mode: "interval",
    targets: options.targets,
    timeoutMs,
    intervalMs: options.intervalMs ?? 10,
    maxDurationMs: options.maxDurationMs ?? 60_000,
    maxInFlight: options.maxInFlight ?? 64,
  });
  await runner.ready();
  let stopping: Promise<ProbeRecord[]> | undefined;
  return {
    startedAt: runner.startedAt(),
    records: () => [...runner.records],
    waitFor: (test, waitMs) => runner.waitFor(test, waitMs),
    skipped: () => runner.done()?.skipped ?? 0,
    stop: () => {
      stopping ??= (async () => {
        if (!hasExited(runner.process)) runner.process.stdin?.end();
        await runner.exit(timeoutMs + 5000);
        return [...runner.records];
      })();
      return stopping;
    },
    finished: runner.finished,
  };
}

export interface HttpGetAllOptions {
  /** Requests outstanding at once. Default 16. */
  readonly concurrency?: number;
  /** Per request. Default 2000. */
  readonly timeoutMs?: number;
}

/**
 * GETs every target once from inside `ns`, `concurrency` at a time, in ONE process; resolves
 * with one record per target, in target order. E.g. "does node port P_i reach guest i, for
 * all i": `failures(await httpGetAll(world, targets))` should be empty.
 */
export async function httpGetAll(ns: string, targets: readonly ProbeTarget[], options: HttpGetAllOptions = {}): Promise<ProbeRecord[]> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const runner = startRunner(ns, { mode: "sweep", targets, timeoutMs, concurrency: options.concurrency ?? 16 });
  const records = await runner.finished;
  if (records.length !== targets.length) {
    throw new Error(`httpGetAll: ${records.length} of ${targets.length} answers\n${runner.output.tail()}`);
  }
  return records.sort((a, b) => a.target - b.target);
}

/** Failed requests, in order of completion. */
export function failures(records: readonly ProbeRecord[]): ProbeRecord[] {
  return records.filter((record) => !record.ok);
}

/** Successful requests per target index (`targetCount` entries, zeros included). */
export function successesPerTarget(records: readonly ProbeRecord[], targetCount: number): number[] {
  const counts = new Array<number>(targetCount).fill(0);
  for (const record of records) if (record.ok) counts[record.target] = (counts[record.target] ?? 0) + 1;
  return counts;
}

export interface ProbeSummary {
  readonly requests: number;
  readonly ok: number;
  readonly failed: number;
  /** e.g. `{ ETIMEDOUT: 3, ECONNREFUSED: 1 }`. */
  readonly failuresByCode: Record<string, number>;
  /** Targets with no successful request at all. */
  readonly targetsNeverOk: number[];
  /** From the first request's start to the last one's end. */
  readonly durationMs: number;
  readonly requestsPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
}

/** Totals for assertion messages and reports. */
export function summarizeProbe(records: readonly ProbeRecord[], targetCount: number): ProbeSummary {
  const failuresByCode: Record<string, number> = {};
  for (const { code } of failures(records)) failuresByCode[code ?? "?"] = (failuresByCode[code ?? "?"] ?? 0) + 1;
  const start = Math.min(...records.map((record) => record.at));
  const end = Math.max(...records.map((record) => record.at + record.ms));
  const durationMs = records.length === 0 ? 0 : end - start;
  const latencies = records.filter((record) => record.ok).map((record) => record.ms).sort((a, b) => a - b);
  const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
  const ok = latencies.length;
  return {
    requests: records.length,
    ok,
    failed: records.length - ok,
    failuresByCode,
    targetsNeverOk: successesPerTarget(records, targetCount).flatMap((count, target) => (count === 0 ? [target] : [])),
    durationMs: Math.round(durationMs),
    requestsPerSecond: durationMs === 0 ? 0 : Math.round((records.length * 1000) / durationMs),
    latencyMs: { p50: percentile(50), p99: percentile(99), max: latencies.at(-1) ?? 0 },
  };
}

interface Runner {
  readonly process: NsProcess;
  readonly output: ProcessOutput;
  readonly records: ProbeRecord[];
  ready(): Promise<void>;
  startedAt(): number;
  done(): ProbeRunnerDone | undefined;
  waitFor(test: (records: readonly ProbeRecord[]) => boolean, timeoutMs: number): Promise<ProbeRecord[]>;
  /** Waits for the process to end, SIGKILLing it after `timeoutMs`. */
  exit(timeoutMs: number): Promise<void>;
  /** Every record, once the process ended; rejects if it ended without its "done" line. */
  readonly finished: Promise<ProbeRecord[]>;
}

function startRunner(ns: string, config: ProbeRunnerConfig): Runner {
  if (config.targets.length === 0) throw new Error("traffic probe: no targets");
  const json = JSON.stringify(config);
  if (Buffer.byteLength(json) > MAX_CONFIG_BYTES) throw new Error(`traffic probe: config of ${json.length} bytes is too large`);
  const subprocess = spawnIn(ns, process.execPath, ["--import", "tsx", RUNNER_SCRIPT, json], { cwd: REPO_ROOT });
  const output = new ProcessOutput(subprocess, `traffic probe in ${ns}`);
  const records: ProbeRecord[] = [];
  let done: ProbeRunnerDone | undefined;
  const listeners = new Set<() => void>();
  output.onLine((line) => {
    if (line.startsWith("{")) records.push(JSON.parse(line) as ProbeRecord);
    else if (line.startsWith("done ")) done = JSON.parse(line.slice("done ".length)) as ProbeRunnerDone;
    else return;
    for (const listener of listeners) listener();
  });
  const finished = output.closed.then(() => {
    if (done === undefined) throw new Error(`traffic probe ${output.describeExit()} before finishing\n${output.tail()}`);
    return [...records];
  });
  // Awaited by callers that care; the rest must not trip an unhandled rejection.
  finished.catch(() => undefined);
  let readyLine: Promise<string> | undefined;
  let started: number | undefined;
  return {
    process: subprocess,
    output,
    records,
    ready: async () => {
      readyLine ??= output.waitForLine((line) => line.startsWith("ready "), 15_000, '"ready"');
      try {
        started = Number((await readyLine).slice("ready ".length));
      } catch (error) {
        await killProcess(subprocess, "SIGKILL");
        throw error;
      }
    },
    startedAt: () => started ?? done?.started ?? Number.NaN,
    done: () => done,
    waitFor: (test, timeoutMs) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (!test(records)) return;
          cleanup();
          resolve([...records]);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`traffic probe: condition not met within ${timeoutMs} ms (${records.length} records)`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        void output.closed.then(() => {
          if (!listeners.has(check)) return;
          cleanup();
          if (test(records)) resolve([...records]);
          else reject(new Error(`traffic probe ended (${output.describeExit()}) before the condition was met`));
        });
        check();
      }),
    exit: async (timeoutMs) => {
      if (hasExited(subprocess)) return;
      const timer = setTimeout(() => subprocess.kill("SIGKILL"), timeoutMs);
      try {
        await output.closed;
      } finally {
        clearTimeout(timer);
      }
    },
    finished,
  };
}
