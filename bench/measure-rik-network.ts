/**
 * rik-network measured the way its clients see it: the real service, compiled
 * (`node dist/main.js serve`, as deployed), in the node namespace of a fresh topology (node and
 * world, test/helpers/netns.ts), on one firewall backend; every call made over gRPC on its unix
 * socket from this process (unix sockets are not bound to a network namespace), latency taken
 * around each call. The data path is timed from the topology's world namespace.
 */
import fs from "node:fs";
import path from "node:path";
import type { InstanceNetwork } from "../src/gen/rik/network/v1/workload_network_pb.js";
import { attachGuest } from "../test/helpers/attach-guest.js";
import { delay, deleteNamespace, onNamespaceDelete, Topology } from "../test/helpers/netns.js";
import { probeHealth, type ServiceProcess } from "../test/helpers/service-process.js";
import { WorkloadClient } from "../test/helpers/workload-client.js";
import { churnRate, runChurn, type ChurnResult } from "./churn.js";
import { startCompiledService } from "./compiled-service.js";
import { forEachLimit } from "./concurrency.js";
import { sampleInterleaved, startProbeClient, startProbeServer, type DataPathSamples, type ProbeClient } from "./datapath.js";
import { churnInstance, datapathInstance, definitionOf, type BenchInstance, type InstancePlan } from "./instances.js";
import { exposedPorts, kernelDifferences, type KernelCheck } from "./kernel-check.js";
import type { FirewallBackend } from "./options.js";
import type { Progress } from "./progress.js";
import { cpuUse, memoryOf, servicePid, settle, type CpuUse, type Memory } from "./system.js";

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

/** The churn, and how the node looked once it was over. */
export interface ChurnPhase extends ChurnResult {
  /** Where the CPU went during the cycles. */
  readonly cpu: CpuUse;
  /** Instances List returned after the churn, of `expected` (the fill's). */
  readonly listed: number;
  readonly expected: number;
  readonly kernel: KernelCheck;
}

export interface DataPathPhase extends DataPathSamples {
  /** Host port the guest is exposed on, on both nodes. */
  readonly hostPort: number;
  /** Exposed instances on each node while sampling: a is the reference, b the size's node. */
  readonly exposedA: number;
  readonly exposedB: number;
}

export interface RikNetworkResult {
  readonly size: number;
  readonly firewall: FirewallBackend;
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
  readonly churn: ChurnPhase | undefined;
  readonly datapath: DataPathPhase | undefined;
  /** Wall time of each part of the phase, in ms. */
  readonly partsMs: Record<string, number>;
  readonly failures: string[];
}

export interface RikNetworkRunOptions {
  readonly pool: string;
  readonly size: number;
  readonly plan: InstancePlan;
  readonly fillConcurrency: number;
  readonly firewall: FirewallBackend;
  /** Extra flags for the service, e.g. ["--firewall-backend", "iptables", "--iptables-backend", "legacy"]. */
  readonly serviceArgs: readonly string[];
  /** iptables-save binary of the service's iptables backend, to check the rules it made. */
  readonly saveCommand: string;
  readonly churnSeconds: number;
  readonly churnInFlight: number;
  readonly datapathSamples: number;
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

/** Where the phase keeps a service's socket and state: a directory of the run's, removed with the node namespace. */
function socketIn(ns: string, workDir: string): string {
  const socketDir = fs.mkdtempSync(path.join(workDir, "svc-"));
  onNamespaceDelete(ns, () => fs.rmSync(socketDir, { recursive: true, force: true }));
  return path.join(socketDir, "rik.sock");
}

/** A guest behind `network`'s TAP in `nodeNs`, serving the data path's TCP on its guest port, and a client of it in `worldNs`. */
async function guestAndClient(topology: Topology, network: InstanceNetwork, instance: BenchInstance) {
  const guest = await attachGuest(topology.node, network);
  await startProbeServer(guest.guestNs, instance.guestPort);
  return startProbeClient(topology.world, topology.nodeIp, instance.hostPort);
}

/**
 * The data path on the phase's node (its fill, plus the guest's instance) against a reference
 * node of the same backend with the guest's instance alone, both exposed on the same host port,
 * sampled in turn. The reference lives only for this part; the guest's instance is destroyed
 * after it, so that the rest of the phase sees the fill only.
 */
async function measureDataPath(topology: Topology, rpc: WorkloadClient, options: RikNetworkRunOptions): Promise<DataPathPhase> {
  const instance = datapathInstance(options.pool, options.size);
  const reference = await Topology.create();
  let referenceClient: WorkloadClient | undefined;
  const probes: ProbeClient[] = [];
  try {
    const referenceService = await start(reference.node, socketIn(reference.node, options.workDir), options);
    referenceClient = new WorkloadClient(referenceService.address);
    const [alone, beside] = await Promise.all([
      referenceClient.create(instance.id, definitionOf(instance)),
      rpc.create(instance.id, definitionOf(instance)),
    ]);
    const a = await guestAndClient(reference, alone, instance);
    probes.push(a);
    const b = await guestAndClient(topology, beside, instance);
    probes.push(b);
    // A service just started makes its spare TAPs and reconciles; let that pass first.
    await settle({ maxMs: 5000 });
    const samples = await sampleInterleaved(a, b, options.datapathSamples, 200);
    return { ...samples, hostPort: instance.hostPort, exposedA: 1, exposedB: options.plan.fill.length + 1 };
  } finally {
    await Promise.all(probes.map((probe) => probe.stop()));
    referenceClient?.close();
    // Guests first: their relays hold the TAPs open.
    await reference.dispose();
    for (const guest of topology.namespaces().filter((name) => name !== topology.node && name !== topology.world)) await deleteNamespace(guest);
    await rpc.destroy(instance.id);
  }
}

/**
 * Churn on the filled node, then the node compared with what the service says it holds: List
 * against the links, addresses and the backend's state. The DESTROYs may leave work to the
 * background (a TAP deleted after the answer), so the comparison is repeated until it comes out
 * exact, for up to 20 s; the time that took is part of the result.
 */
async function measureChurn(topology: Topology, rpc: WorkloadClient, servicePid: number, options: RikNetworkRunOptions): Promise<ChurnPhase> {
  const instance = (slot: number, cycle: number) => churnInstance(options.pool, slot, cycle);
  const cpu = cpuUse(servicePid);
  const churn = await runChurn(
    {
      create: (slot, cycle) => rpc.create(instance(slot, cycle).id, definitionOf(instance(slot, cycle))),
      destroy: (slot, cycle) => rpc.destroy(instance(slot, cycle).id),
    },
    { inFlight: options.churnInFlight, durationMs: options.churnSeconds * 1000 },
  );
  const used = cpu();
  const kernel = await kernelDifferences({
    ns: topology.node,
    firewall: options.firewall,
    pool: options.pool,
    saveCommand: options.saveCommand,
    networks: () => rpc.list(),
    timeoutMs: 20_000,
  });
  return { ...churn, cpu: used, listed: kernel.listed, expected: options.plan.fill.length, kernel };
}

/** Runs every rik-network measurement of one size on one firewall backend in a fresh topology, and deletes it. */
export async function measureRikNetwork(options: RikNetworkRunOptions): Promise<RikNetworkResult> {
  const { plan, progress, size, firewall } = options;
  const topology = await Topology.create();
  const ns = topology.node;
  const socketPath = socketIn(ns, options.workDir);
  const failures: string[] = [];
  const partsMs: Record<string, number> = {};
  const label = `rik-network ${firewall} @${size}`;
  const part = async <T>(name: string, what: string, run: () => Promise<T>): Promise<T> => {
    progress.step(`${label}: ${what}`);
    const started = performance.now();
    try {
      return await run();
    } finally {
      partsMs[name] = performance.now() - started;
    }
  };
  let client: WorkloadClient | undefined;
  /** Set while the service is being stopped on purpose, so that its exit is not reported as a crash. */
  let stopping = false;
  try {
    let service = await part("start", `topology ${topology.id}, starting the service`, () => start(ns, socketPath, options));
    const watchExit = (watched: ServiceProcess) =>
      void watched.exited.then(async (info) => {
        if (stopping) return;
        await watched.output.closed;
        failures.push(`the service exited unexpectedly (${JSON.stringify(info)}):\n${watched.output.tail(20)}`);
        progress.step(`${label}: the service exited unexpectedly (${JSON.stringify(info)})`);
      });
    watchExit(service);
    let pid = await servicePid(ns, service.pid, "serve");
    const memoryAtStart = memoryOf(pid);
    client = new WorkloadClient(service.address);
    const rpc = client;
    const create = (instance: BenchInstance) => rpc.create(instance.id, definitionOf(instance));
    const destroy = (instance: BenchInstance) => rpc.destroy(instance.id);

    // The fill is not measured: a create that fails (e.g. a kernel call timing out on a loaded
    // machine) is retried, and reported.
    const fillMs = await part("fill", `filling with ${plan.fill.length} instances (${options.fillConcurrency} in flight)`, () =>
      timed(() =>
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
      ),
    );
    await settle({ maxMs: 5000 });
    const memoryAtSize = memoryOf(pid);

    const listMs: number[] = [];
    for (let i = 0; i < 20; i++) listMs.push(await timed(() => rpc.list()));
    const getMs: number[] = [];
    const some = plan.fill[Math.floor(plan.fill.length / 2)];
    if (some !== undefined) for (let i = 0; i < 50; i++) getMs.push(await timed(() => rpc.get(some.id)));

    const datapath =
      options.datapathSamples === 0
        ? undefined
        : await part("datapath", `data path: ${options.datapathSamples} connections on each of 1 and ${plan.fill.length + 1} exposed instances, in turn`, () =>
            measureDataPath(topology, rpc, options),
          );
    if (datapath !== undefined && datapath.failures.length > 0) failures.push(...datapath.failures.slice(0, 5).map((f) => `data path ${f}`));

    await settle({ maxMs: 5000 });
    const createMs: number[] = [];
    const destroyMs: number[] = [];
    await part("pairs", `${plan.warmup.length} warm-up + ${plan.sequential.length} sequential create+destroy pairs`, async () => {
      for (const instance of plan.warmup) {
        await create(instance);
        await destroy(instance);
      }
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
    });

    const concurrent = async (action: (instance: BenchInstance) => Promise<unknown>) => {
      const started = performance.now();
      const results = await Promise.allSettled(plan.concurrent.map(action));
      const wallMs = performance.now() - started;
      for (const [index, result] of results.entries()) {
        if (result.status === "rejected") failures.push(`${plan.concurrent[index]!.id}: ${(result.reason as Error).message}`);
      }
      return wallMs;
    };
    const { concurrentCreateMs, concurrentDestroyMs } = await part("concurrent", `${plan.concurrent.length} concurrent creates, then destroys`, async () => {
      const concurrentCreateMs = await concurrent(create);
      const ports = await exposedPorts(ns, firewall, options.saveCommand);
      const missing = plan.concurrent.filter((instance) => !ports.has(instance.hostPort)).length;
      if (missing > 0) failures.push(`after the concurrent creates: ${missing} of ${plan.concurrent.length} host ports not DNATed`);
      return { concurrentCreateMs, concurrentDestroyMs: await concurrent(destroy) };
    });

    await settle({ maxMs: 5000 });
    const churn =
      options.churnSeconds === 0
        ? undefined
        : await part("churn", `churn: ${options.churnSeconds} s of create+destroy cycles, ${options.churnInFlight} in flight, then the kernel state`, () =>
            measureChurn(topology, rpc, pid, options),
          );
    if (churn !== undefined) {
      progress.step(
        `${label}: churn ${Math.round(churnRate(churn))} cycles/s, ${churn.failures.length} failed calls, kernel ${churn.kernel.differences.length === 0 ? "exact" : `${churn.kernel.differences.length} differences`}`,
      );
      failures.push(...churn.failures.slice(0, 5).map((f) => `churn ${f}`));
    }

    const restarted = await part("restart", "restart (SIGTERM, start again, time to SERVING)", async () => {
      client?.close();
      client = undefined;
      stopping = true;
      const stopMs = await timed(() => service.stop("SIGTERM", 30_000));
      await settle({ maxMs: 5000 });
      const again = await restart(ns, socketPath, options);
      return { stopMs, ...again };
    });
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
      firewall,
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
      restart: { stopMs: restarted.stopMs, readyMs: restarted.readyMs, reconcileMs, recovered, expected: plan.fill.length },
      churn,
      datapath,
      partsMs,
      failures,
    };
  } finally {
    stopping = true;
    client?.close();
    progress.step(`${label}: deleting topology ${topology.id}`);
    await topology.dispose();
  }
}
