/**
 * HTTP load generator run by `traffic-probe.ts` inside a test namespace:
 *
 *   node --import tsx test/helpers/traffic-probe-runner.ts '<ProbeRunnerConfig JSON>'
 *
 * Mode "interval": starts one GET every `intervalMs` (open loop: a slow or hanging target
 * does not slow the schedule down), round-robin over the targets, with at most `maxInFlight`
 * requests outstanding (a tick finding that many is skipped and counted), until stdin ends or
 * `maxDurationMs` passes. Mode "sweep": GETs every target once, `concurrency` at a time.
 *
 * Every request uses a fresh connection (no agent): each one goes through connection
 * tracking and DNAT again, as a new client would, instead of riding an established flow.
 *
 * stdout: "ready <ms since the epoch>", then one JSON `ProbeRecord` per finished request, then "done <JSON summary>"
 * once no request is outstanding. The process then exits 0.
 */
import fs from "node:fs";
import http from "node:http";

export interface ProbeRunnerTarget {
  readonly url: string;
  /** The request fails with BODY_MISMATCH unless the body is exactly this. */
  readonly expectBody?: string;
}

export type ProbeRunnerConfig = {
  readonly targets: readonly ProbeRunnerTarget[];
  readonly timeoutMs: number;
} & (
  | { readonly mode: "interval"; readonly intervalMs: number; readonly maxDurationMs: number; readonly maxInFlight: number }
  | { readonly mode: "sweep"; readonly concurrency: number }
);

/** The outcome of one request. */
export interface ProbeRecord {
  /** Index of the target in `targets`. */
  readonly target: number;
  /** When the request started, ms since the epoch (the test's clock too). */
  readonly at: number;
  /** Until the answer, the failure or the timeout, in ms. */
  readonly ms: number;
  readonly ok: boolean;
  /** Failures only: ETIMEDOUT (no answer within `timeoutMs`), a socket error code (ECONNREFUSED, EHOSTUNREACH, ECONNRESET...), HTTP_<status>, or BODY_MISMATCH. */
  readonly code?: string;
  /** BODY_MISMATCH only: the start of the body received (e.g. another guest's answer). */
  readonly body?: string;
}

export interface ProbeRunnerDone {
  readonly started: number;
  readonly requests: number;
  /** Interval mode: ticks skipped because `maxInFlight` requests were outstanding. */
  readonly skipped: number;
}

function get(target: ProbeRunnerTarget, index: number, timeoutMs: number): Promise<ProbeRecord> {
  const at = Date.now();
  const t0 = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: { ok: true } | { ok: false; code: string; body?: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve({ target: index, at, ms: Math.round((performance.now() - t0) * 100) / 100, ...outcome });
    };
    const timer = setTimeout(() => finish({ ok: false, code: "ETIMEDOUT" }), timeoutMs);
    const request = http.get(target.url, { agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        body += chunk;
      });
      response.on("end", () => {
        if (response.statusCode !== 200) finish({ ok: false, code: `HTTP_${String(response.statusCode)}` });
        else if (target.expectBody !== undefined && body !== target.expectBody) {
          finish({ ok: false, code: "BODY_MISMATCH", body: body.slice(0, 200) });
        } else finish({ ok: true });
      });
      response.on("error", (error: NodeJS.ErrnoException) => finish({ ok: false, code: error.code ?? "ERROR" }));
    });
    request.on("error", (error: NodeJS.ErrnoException) => finish({ ok: false, code: error.code ?? "ERROR" }));
  });
}

function emit(line: string): void {
  // Writes to a pipe are synchronous on Linux: nothing is lost when the process exits.
  process.stdout.write(`${line}\n`);
}

async function runInterval(config: Extract<ProbeRunnerConfig, { mode: "interval" }>, started: number): Promise<ProbeRunnerDone> {
  const { targets, timeoutMs, intervalMs, maxDurationMs, maxInFlight } = config;
  const inFlight = new Set<Promise<void>>();
  let requests = 0;
  let skipped = 0;
  let next = 0;
  let stopped = false;
  let wake: () => void = () => undefined;
  const stop = () => {
    stopped = true;
    wake();
  };
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
  const deadline = setTimeout(stop, maxDurationMs);

  let planned = performance.now();
  while (!stopped) {
    if (inFlight.size >= maxInFlight) {
      skipped++;
    } else {
      const index = next;
      next = (next + 1) % targets.length;
      requests++;
      const request = get(targets[index]!, index, timeoutMs).then((record) => {
        emit(JSON.stringify(record));
        inFlight.delete(request);
      });
      inFlight.add(request);
    }
    // Stay on the original schedule, but never burst to catch up after a stall.
    planned = Math.max(planned + intervalMs, performance.now());
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, planned - performance.now());
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  clearTimeout(deadline);
  await Promise.all(inFlight);
  return { started, requests, skipped };
}

async function runSweep(config: Extract<ProbeRunnerConfig, { mode: "sweep" }>, started: number): Promise<ProbeRunnerDone> {
  const { targets, timeoutMs, concurrency } = config;
  // Bounded anyway, but a parent that died wants no answers: leave at once.
  process.stdin.on("end", () => process.exit(1));
  process.stdin.resume();
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const index = next++;
      emit(JSON.stringify(await get(targets[index]!, index, timeoutMs)));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
  return { started, requests: targets.length, skipped: 0 };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? "") as ProbeRunnerConfig;
  const started = Date.now();
  emit(`ready ${started}`);
  const done = config.mode === "sweep" ? await runSweep(config, started) : await runInterval(config, started);
  emit(`done ${JSON.stringify(done)}`);
  // stdin stays open until the parent closes it: leave without waiting for that.
  process.exit(0);
}

main().catch((error: unknown) => {
  fs.writeSync(2, `fatal: ${String((error as Error).stack ?? error)}\n`);
  process.exit(1);
});
