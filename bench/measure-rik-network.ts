/**
 * rik-network measured the way its clients see it: the real service, compiled
 * (`node dist/main.js serve`, as deployed), in a fresh namespace, every call made over gRPC on its unix socket from this process
 * (unix sockets are not bound to a network namespace), latency taken around each call.
 */
import fs from "node:fs";
import path from "node:path";
import { createNamespace, deleteNamespace, delay, onNamespaceDelete, uniqueName } from "../test/helpers/netns.js";
import { probeHealth, type ServiceProcess } from "../test/helpers/service-process.js";
import { startCompiledService } from "./compiled-service.js";
import { WorkloadClient } from "../test/helpers/workload-client.js";
import { forEachLimit } from "./concurrency.js";
import { definitionOf, type BenchInstance, type InstancePlan } from "./instances.js";
import type { Progress } from "./progress.js";
import { runIn } from "./ns-run.js";
import { memoryOf, servicePid, settle, type Memory } from "./system.js";

export interface RestartResult {
  /** SIGTERM until the process exited. */
  readonly stopMs: number;
  /** Spawn of the new process until its health check answered SERVING (probed every ~10 ms). */
  readonly readyMs: number;
  /** The service's own "reconciled" log line at start (duration_ms), when it logs one. */
  readonly reconcileMs: number | undefined;
  /** Instances List returned once SERVING, of `expected`. */
  readonly recovered: number;
  readonly expected: number;
}

export interface RikNetworkResult {
  readonly size: number;
  readonly namespace: string;
  readonly fillMs: number;
  readonly createMs: number[];
  readonly destroyMs: number[];
  readonly concurrentCreateMs: number;
  readonly concurrentDestroyMs: number;
  /** gRPC round trip of List (size instances listed) and of Get of one instance (size > 0). */
  readonly listMs: number[];
  readonly getMs: number[];
  readonly memoryAtStart: Memory;
  readonly memoryAtSize: Memory;
  readonly restart: RestartResult;
  readonly failures: string[];
}

export interface RikNetworkRunOptions {
  readonly pool: string;
  readonly size: number;
  readonly plan: InstancePlan;
  readonly fillConcurrency: number;
  /** Extra flags for the service, e.g. ["--iptables-backend", "legacy"]. */
  readonly serviceArgs: readonly string[];
  /** iptables-save binary of the service's backend, to check the rules it made. */
  readonly saveCommand: string;
  /** Directory of this run's temporary files; each service's socket and state directory go in it. */
  readonly workDir: string;
  readonly progress: Progress;
}

const READY_TIMEOUT_MS = 300_000;

function start(ns: string, socketPath: string, options: RikNetworkRunOptions, logLevel: "warn" | "info" = "warn"): Promise<ServiceProcess> {
  return startCompiledService({
    nodeNs: ns,
    pool: options.pool,
    nodeName: "bench-node",
    logLevel,
    socketPath,
    // Always our own directory, removed with the namespace: never the host's /var/lib/rik-network.
    stateDir: path.join(path.dirname(socketPath), "state"),
    extraArgs: options.serviceArgs,
    readyTimeoutMs: READY_TIMEOUT_MS,
  });
}

async function timed(call: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await call();
  return performance.now() - started;
}

/** Spawns the service again on the same socket; time until the first SERVING health answer. */
async function restart(ns: string, socketPath: string, options: RikNetworkRunOptions): Promise<{ service: ServiceProcess; readyMs: number }> {
  const address = `unix://${socketPath}`;
  const spawned = performance.now();
  // At info level the service logs how long its reconcile at start took; few RPCs follow.
  const starting = start(ns, socketPath, options, "info");
  let readyMs: number | undefined;
  let failed = false;
  starting.catch(() => {
    failed = true;
  });
  while (readyMs === undefined && !failed && performance.now() - spawned < READY_TIMEOUT_MS) {
    if (fs.existsSync(socketPath) && (await probeHealth(address, 500)) === "ready") readyMs = performance.now() - spawned;
    else await delay(10);
  }
  const service = await starting;
  return { service, readyMs: readyMs ?? performance.now() - spawned };
}

async function countRules(ns: string, saveCommand: string, prefix: string): Promise<number> {
  const { stdout } = await runIn(ns, saveCommand, []);
  return stdout.split("\n").filter((line) => line.includes(`rik:${prefix}-`)).length;
}

/** Runs every rik-network measurement of one size in a fresh namespace, and deletes the namespace. */
export async function measureRikNetwork(options: RikNetworkRunOptions): Promise<RikNetworkResult> {
  const { plan, progress, size } = options;
  const ns = await createNamespace(uniqueName("rikt-bench"));
  const socketDir = fs.mkdtempSync(path.join(options.workDir, "svc-"));
  onNamespaceDelete(ns, () => fs.rmSync(socketDir, { recursive: true, force: true }));
  const socketPath = path.join(socketDir, "rik.sock");
  const failures: string[] = [];
  let client: WorkloadClient | undefined;
  /** Set while the service is being stopped on purpose, so that its exit is not reported as a crash. */
  let stopping = false;
  try {
    progress.step(`rik-network @${size}: namespace ${ns}, starting the service`);
    let service = await start(ns, socketPath, options);
    const watchExit = (watched: ServiceProcess) =>
      void watched.exited.then(async (info) => {
        if (stopping) return;
        await watched.output.closed;
        failures.push(`the service exited unexpectedly (${JSON.stringify(info)}):\n${watched.output.tail(20)}`);
        progress.step(`rik-network @${size}: the service exited unexpectedly (${JSON.stringify(info)})`);
      });
    watchExit(service);
    let pid = await servicePid(ns, service.pid, "serve");
    const memoryAtStart = memoryOf(pid);
    client = new WorkloadClient(service.address);
    const rpc = client;
    const create = (instance: BenchInstance) => rpc.create(instance.id, definitionOf(instance));
    const destroy = (instance: BenchInstance) => rpc.destroy(instance.id);

    progress.step(`rik-network @${size}: filling with ${plan.fill.length} instances (${options.fillConcurrency} in flight)`);
    // The fill is not measured: a create that fails (e.g. a kernel call timing out on a loaded
    // machine) is retried, and reported.
    const fillMs = await timed(() =>
      forEachLimit(plan.fill, options.fillConcurrency, async (instance) => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await create(instance);
          } catch (error) {
            failures.push(`fill ${instance.id} attempt ${attempt}: ${(error as Error).message}`);
            if (attempt === 3) throw error;
            await delay(200);
          }
        }
      }),
    );
    await settle({ maxMs: 5000 });
    const memoryAtSize = memoryOf(pid);

    const listMs: number[] = [];
    for (let i = 0; i < 20; i++) listMs.push(await timed(() => rpc.list()));
    const getMs: number[] = [];
    const some = plan.fill[Math.floor(plan.fill.length / 2)];
    if (some !== undefined) for (let i = 0; i < 50; i++) getMs.push(await timed(() => rpc.get(some.id)));

    progress.step(`rik-network @${size}: ${plan.warmup.length} warm-up + ${plan.sequential.length} sequential create+destroy pairs`);
    for (const instance of plan.warmup) {
      await create(instance);
      await destroy(instance);
    }
    const createMs: number[] = [];
    const destroyMs: number[] = [];
    for (const instance of plan.sequential) {
      try {
        const created = await timed(() => create(instance));
        const destroyed = await timed(() => destroy(instance));
        createMs.push(created);
        destroyMs.push(destroyed);
      } catch (error) {
        failures.push(`${instance.id}: ${(error as Error).message}`);
      }
    }

    progress.step(`rik-network @${size}: ${plan.concurrent.length} concurrent creates, then destroys`);
    const concurrent = async (action: (instance: BenchInstance) => Promise<unknown>) => {
      const started = performance.now();
      const results = await Promise.allSettled(plan.concurrent.map(action));
      const wallMs = performance.now() - started;
      for (const [index, result] of results.entries()) {
        if (result.status === "rejected") failures.push(`${plan.concurrent[index]!.id}: ${(result.reason as Error).message}`);
      }
      return wallMs;
    };
    const concurrentCreateMs = await concurrent(create);
    const rules = await countRules(ns, options.saveCommand, "conc");
    if (rules !== plan.concurrent.length) failures.push(`after the concurrent creates: ${rules} rules, expected ${plan.concurrent.length}`);
    const concurrentDestroyMs = await concurrent(destroy);

    progress.step(`rik-network @${size}: restart (SIGTERM, start again, time to SERVING)`);
    client.close();
    client = undefined;
    stopping = true;
    const stopMs = await timed(() => service.stop("SIGTERM", 30_000));
    await settle({ maxMs: 5000 });
    const restarted = await restart(ns, socketPath, options);
    service = restarted.service;
    stopping = false;
    watchExit(service);
    pid = await servicePid(ns, service.pid, "serve");
    client = new WorkloadClient(service.address);
    const recovered = (await client.list()).length;
    const reconciled = service.logs().find((entry) => entry.message === "reconciled" && entry.trigger === "start");
    const reconcileMs = typeof reconciled?.duration_ms === "number" ? reconciled.duration_ms : undefined;

    return {
      size,
      namespace: ns,
      fillMs,
      createMs,
      destroyMs,
      concurrentCreateMs,
      concurrentDestroyMs,
      listMs,
      getMs,
      memoryAtStart,
      memoryAtSize,
      restart: { stopMs, readyMs: restarted.readyMs, reconcileMs, recovered, expected: plan.fill.length },
      failures,
    };
  } finally {
    stopping = true;
    client?.close();
    progress.step(`rik-network @${size}: deleting namespace ${ns}`);
    await deleteNamespace(ns);
  }
}
