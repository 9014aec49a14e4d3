/**
 * Crash safety: the service is SIGKILLed at every step of CREATE and DESTROY (a test-only
 * fault hook) and at random instants under load. After each restart, the kernel holds
 * exactly the acknowledged instances: no TAP, rule, address or /30 leaked, none lost.
 */
import test, { type ExecutionContext } from "ava";
import type { InstanceNetwork } from "../src/gen/rik/network/v1/workload_network_pb.js";
import { kernelDiff } from "./helpers/kernel-diff.js";
import { delay, Topology } from "./helpers/netns.js";
import { seededRandom } from "./helpers/seeded-random.js";
import { startService, type ServiceProcess } from "./helpers/service-process.js";
import { functionDefinition, ResourceStatus, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/24";

type Op = { readonly action: "create"; readonly id: string; readonly port?: number } | { readonly action: "destroy"; readonly id: string };

/** Every create and destroy path: with and without exposure, re-creating a destroyed id, destroying an unknown one. */
const workload: Op[] = [
  { action: "create", id: "a", port: 8001 },
  { action: "create", id: "b" },
  { action: "create", id: "c", port: 8003 },
  { action: "destroy", id: "a" },
  { action: "create", id: "d", port: 8004 },
  { action: "destroy", id: "b" },
  { action: "create", id: "e", port: 8005 },
  { action: "destroy", id: "c" },
  { action: "destroy", id: "ghost" },
  { action: "create", id: "a", port: 8001 },
  { action: "create", id: "f" },
  { action: "destroy", id: "d" },
  { action: "create", id: "g", port: 8007 },
  { action: "destroy", id: "e" },
];

function definitionOf(op: Op & { action: "create" }): string {
  return functionDefinition({ name: op.id, exposure: op.port === undefined ? undefined : { port: op.port, targetPort: 80 } });
}

function run(client: WorkloadClient, op: Op): Promise<InstanceNetwork> {
  return op.action === "create" ? client.create(op.id, definitionOf(op)) : client.destroy(op.id);
}

/** The lowest /30 of the pool that none of `networks` holds: where the next CREATE must land if nothing leaked. */
function lowestFreeHostIp(networks: readonly InstanceNetwork[]): string {
  const taken = new Set(networks.map((n) => n.network.value!.hostIp));
  for (let slot = 0; ; slot++) {
    const hostIp = `10.220.0.${slot * 4 + 1}`;
    if (!taken.has(hostIp)) return hostIp;
  }
}

interface Recovery {
  readonly listed: InstanceNetwork[];
  readonly diffs: string[];
}

/**
 * Restarts the service on the same state and checks what it recovered against what was
 * acknowledged. `uncertain` ids had an operation in flight at the crash: either outcome
 * is right, as long as it is whole.
 */
async function recover(t: ExecutionContext, topology: Topology, crashed: ServiceProcess, acknowledged: ReadonlyMap<string, InstanceNetwork>, uncertain: ReadonlySet<string>): Promise<Recovery> {
  const service = await startService({ nodeNs: topology.node, pool: POOL, socketPath: crashed.socketPath, logLevel: "warn" });
  const client = new WorkloadClient(service.address);
  try {
    const listed = await client.list();
    const ids = listed.map((n) => n.instanceId);
    t.deepEqual(
      ids.filter((id) => !uncertain.has(id)).sort(),
      [...acknowledged.keys()].filter((id) => !uncertain.has(id)).sort(),
      "exactly the acknowledged instances survive",
    );
    for (const network of listed) {
      t.is(network.status, ResourceStatus.RUNNING, `${network.instanceId} is running, not half-made`);
      const acked = acknowledged.get(network.instanceId);
      if (acked !== undefined && !uncertain.has(network.instanceId)) t.deepEqual(network, acked, "the same network as acknowledged");
    }
    const diffs = await kernelDiff(topology.node, listed, POOL);
    const probe = await client.create("probe", functionDefinition({ name: "probe" }));
    t.is(probe.network.value?.hostIp, lowestFreeHostIp(listed), "no /30 leaked: the next CREATE takes the lowest free one");
    return { listed, diffs };
  } finally {
    client.close();
    await service.stop();
  }
}

/** Runs the workload with a kill at fault point `step`; undefined when the workload finishes first. */
async function crashAtStep(t: ExecutionContext, step: number): Promise<Recovery | undefined> {
  const topology = await Topology.create();
  try {
    const service = await startService({
      nodeNs: topology.node,
      pool: POOL,
      logLevel: "warn",
      env: { RIK_NETWORK_TEST_KILL_AT_STEP: String(step) },
    });
    const client = new WorkloadClient(service.address);
    const acknowledged = new Map<string, InstanceNetwork>();
    let inFlight: Op | undefined;
    for (const op of workload) {
      try {
        const network = await run(client, op);
        if (op.action === "create") acknowledged.set(op.id, network);
        else acknowledged.delete(op.id);
      } catch {
        inFlight = op;
        break;
      }
    }
    client.close();
    if (inFlight === undefined) {
      await service.stop();
      return undefined;
    }
    t.is((await service.exited).signal, "SIGKILL", `step ${step}: the service was killed by its fault hook`);
    return await recover(t, topology, service, acknowledged, new Set([inFlight.id]));
  } finally {
    await topology.dispose();
  }
}

test("a SIGKILL at any step of CREATE or DESTROY is recovered exactly at restart", async (t) => {
  t.timeout(15 * 60_000);
  const results = new Map<number, Recovery>();
  let lastStep: number | undefined;
  let next = 1;
  // Three crash-and-recover runs at a time, until a run reaches the end of the workload alive.
  const worker = async () => {
    while (lastStep === undefined || next <= lastStep) {
      const step = next++;
      if (lastStep !== undefined && step > lastStep) return;
      const recovery = await crashAtStep(t, step);
      if (recovery === undefined) lastStep = Math.min(lastStep ?? Infinity, step - 1);
      else results.set(step, recovery);
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  const steps = [...results.keys()].filter((step) => step <= lastStep!).sort((a, b) => a - b);
  t.log(`fault points exercised: ${steps.length}`);
  t.true(steps.length >= 50, `only ${steps.length} distinct fault points`);
  t.deepEqual(steps, Array.from({ length: lastStep! }, (_, i) => i + 1), "every step up to the end of the workload crashed");
  for (const step of steps) t.deepEqual(results.get(step)!.diffs, [], `kernel differences after a crash at step ${step}`);
});

test("SIGKILLs at random instants under concurrent load are recovered exactly", async (t) => {
  t.timeout(5 * 60_000);
  const topology = await Topology.create({ teardown: t });
  let service = await startService({ nodeNs: topology.node, pool: POOL, logLevel: "warn" });
  t.teardown(() => service.stop());
  const ids = Array.from({ length: 24 }, (_, i) => `r${i}`);
  const nextRandom = seededRandom(0x5eed);
  for (let round = 0; round < 5; round++) {
    const client = new WorkloadClient(service.address);
    const acknowledged = new Map<string, InstanceNetwork>((await client.list()).map((n) => [n.instanceId, n]));
    const uncertain = new Set<string>();
    const busy = new Set<string>();
    let alive = true;
    const killAfter = 100 + nextRandom(900);
    const killer = delay(killAfter).then(() => {
      alive = false;
      process.kill(service.pid!, "SIGKILL");
    });
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (alive) {
          const id = ids[nextRandom(ids.length)]!;
          if (busy.has(id)) {
            await delay(1);
            continue;
          }
          busy.add(id);
          const index = Number(id.slice(1));
          const op: Op = nextRandom(3) === 0 ? { action: "destroy", id } : { action: "create", id, port: 9000 + index };
          uncertain.add(id);
          try {
            const network = await run(client, op);
            if (op.action === "create") acknowledged.set(id, network);
            else acknowledged.delete(id);
            uncertain.delete(id);
          } catch {
            // The kill: this operation's outcome is unknown to the client.
          } finally {
            busy.delete(id);
          }
        }
      }),
    );
    await killer;
    client.close();
    await service.exited;
    const { diffs } = await recover(t, topology, service, acknowledged, uncertain);
    t.deepEqual(diffs, [], `kernel differences after random kill ${round + 1} at ${killAfter} ms`);
    service = await startService({ nodeNs: topology.node, pool: POOL, socketPath: service.socketPath, logLevel: "warn" });
    // Clear the probe instance recover() left behind, so the next round starts from acknowledged state only.
    const cleaner = new WorkloadClient(service.address);
    await cleaner.destroy("probe");
    cleaner.close();
  }
});
