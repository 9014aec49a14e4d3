/**
 * Crash safety: the service is SIGKILLed at every step of CREATE and DESTROY (a fault hook
 * the test preloads into it, test/helpers/kill-at-step.ts) and at random instants under load.
 * After each restart, the kernel holds exactly the instances the journal says, and what it
 * says is decided by where the crash hit, as the README's "State, restart and recovery"
 * promises: a CREATE killed after its "creating" intent but before its "running" line is
 * undone; one killed anywhere after the "running" line (written before the first kernel
 * call) is completed; a DESTROY killed after its "destroying" intent is finished, the TAP it
 * had retired (renamed, its deletion pending) included. No TAP, retired TAP, rule, address or
 * /30 leaked, none lost, and a retried operation gets the same answer.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test, { type ExecutionContext } from "ava";
import type { InstanceNetwork } from "../src/gen/rik/network/v1/workload_network_pb.js";
import { kernelDiff } from "./helpers/kernel-diff.js";
import { ipLinks, retiredTapLinks } from "./helpers/kernel-state.js";
import { delay, REPO_ROOT, Topology } from "./helpers/netns.js";
import { seededRandom } from "./helpers/seeded-random.js";
import { startService, type ServiceOptions, type ServiceProcess } from "./helpers/service-process.js";
import { functionDefinition, ResourceStatus, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/24";
const KILL_AT_STEP = path.join(REPO_ROOT, "test", "helpers", "kill-at-step.ts");

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

/**
 * What a restart must make of an operation killed at each fault point (grep faultPoint in
 * src): "undone" (the instance is not there), "completed" (it is, running), "finished"
 * (a DESTROY: it is gone). A fault point missing here fails the test until it is classified.
 */
const OUTCOME_AT: Readonly<Record<string, "undone" | "completed" | "finished">> = {
  "create: intent recorded": "undone",
  "create: TAP added": "completed",
  "create: address added": "completed",
  "create: TAP and rules added": "completed",
  "create: acknowledged": "completed",
  "destroy: intent recorded": "finished",
  "destroy: TAP renamed, deletion pending": "finished",
  "destroy: rules removed": "finished",
  "destroy: rules removed and TAP retired": "finished",
  "destroy: record removed": "finished",
};

/**
 * No spare TAPs, so that every CREATE takes the same steps (a spare is ready or not
 * depending on timing) and the Nth fault point is the same step in every run; no resync,
 * whose repairs pass fault points too. The random kills below run with spares.
 */
const DETERMINISTIC = ["--spare-taps", "0", "--resync-interval", "0"];

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

interface Expectation {
  /** The instances that must be there after the restart, with their network when it was acknowledged. */
  readonly present: ReadonlyMap<string, InstanceNetwork | undefined>;
  /** Instances whose operation was in flight at an unknown instant (random kills): there or not, but whole. */
  readonly uncertain: ReadonlySet<string>;
  /** Operations retried once the service is back, as a client that got no answer would. */
  readonly retried: readonly Op[];
}

/**
 * Restarts the service on the same state and checks what it recovered against what it must
 * have: the instances, their networks, the kernel state, no /30 leaked; then retries the
 * operations cut short, which must answer as if the crash had not happened.
 */
async function recover(t: ExecutionContext, topology: Topology, crashed: ServiceProcess, expected: Expectation, options: Partial<ServiceOptions> = {}): Promise<string[]> {
  const service = await startService({ ...options, nodeNs: topology.node, pool: POOL, socketPath: crashed.socketPath, logLevel: "warn" });
  const client = new WorkloadClient(service.address);
  try {
    // What the crash left of retired TAPs is deleted by the reconcile at start, before the service serves.
    t.deepEqual(retiredTapLinks(await ipLinks(topology.node)).map((link) => link.ifname), [], "no retired TAP once serving again");
    const listed = await client.list();
    const certain = (id: string) => !expected.uncertain.has(id);
    t.deepEqual(
      listed.map((n) => n.instanceId).filter(certain).sort(),
      [...expected.present.keys()].filter(certain).sort(),
      "exactly the instances the crash point decides",
    );
    for (const network of listed) {
      t.is(network.status, ResourceStatus.RUNNING, `${network.instanceId} is running, not half-made`);
      const acked = expected.present.get(network.instanceId);
      if (acked !== undefined && certain(network.instanceId)) t.deepEqual(network, acked, "the same network as acknowledged");
    }
    const diffs = await kernelDiff(topology.node, listed, POOL);
    const probe = await client.create("probe", functionDefinition({ name: "probe" }));
    t.is(probe.network.value?.hostIp, lowestFreeHostIp(listed), "no /30 leaked: the next CREATE takes the lowest free one");
    for (const op of expected.retried) {
      const answer = await run(client, op);
      const before = listed.find((n) => n.instanceId === op.id);
      if (op.action === "destroy") t.is(answer.status, ResourceStatus.TERMINATED, `retried DESTROY of ${op.id}`);
      else if (before !== undefined) t.deepEqual(answer, before, `a retried CREATE of ${op.id} returns the network the restart completed`);
      else t.is(answer.status, ResourceStatus.RUNNING, `a retried CREATE of ${op.id}, undone at restart, creates it`);
    }
    return diffs;
  } finally {
    client.close();
    await service.stop();
  }
}

interface Crash {
  /** The step name of the fault point the service died at. */
  readonly step: string;
  readonly diffs: string[];
}

/** Runs the workload with a kill at fault point `step`; undefined when the workload finishes first. */
async function crashAtStep(t: ExecutionContext, step: number): Promise<Crash | undefined> {
  const topology = await Topology.create();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-crash-"));
  const stepFile = path.join(dir, "killed-at");
  try {
    const service = await startService({
      nodeNs: topology.node,
      pool: POOL,
      logLevel: "warn",
      extraArgs: DETERMINISTIC,
      nodeArgs: ["--import", KILL_AT_STEP],
      env: { RIKT_KILL_AT_STEP: String(step), RIKT_KILL_STEP_FILE: stepFile },
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
    const killedAt = fs.readFileSync(stepFile, "utf8");
    t.true(killedAt.startsWith(`${inFlight.action}:`), `step ${step}: killed at "${killedAt}", during a ${inFlight.action}`);
    const outcome = OUTCOME_AT[killedAt];
    t.not(outcome, undefined, `fault point "${killedAt}" has no expected outcome in OUTCOME_AT`);
    const present = new Map<string, InstanceNetwork | undefined>(acknowledged);
    if (outcome === "completed") present.set(inFlight.id, undefined);
    else present.delete(inFlight.id);
    const diffs = await recover(t, topology, service, { present, uncertain: new Set(), retried: [inFlight] }, { extraArgs: DETERMINISTIC });
    return { step: killedAt, diffs };
  } finally {
    await topology.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("a SIGKILL at any step of CREATE or DESTROY is undone or completed at restart, as its step decides", async (t) => {
  t.timeout(15 * 60_000);
  const results = new Map<number, Crash>();
  let lastStep: number | undefined;
  let next = 1;
  // Three crash-and-recover runs at a time, until a run reaches the end of the workload alive.
  const worker = async () => {
    while (lastStep === undefined || next <= lastStep) {
      const step = next++;
      if (lastStep !== undefined && step > lastStep) return;
      const crash = await crashAtStep(t, step);
      if (crash === undefined) lastStep = Math.min(lastStep ?? Infinity, step - 1);
      else results.set(step, crash);
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  const steps = [...results.keys()].filter((step) => step <= lastStep!).sort((a, b) => a - b);
  t.log(`fault points exercised: ${steps.length}`);
  t.true(steps.length >= 50, `only ${steps.length} distinct fault points`);
  t.deepEqual(steps, Array.from({ length: lastStep! }, (_, i) => i + 1), "every step up to the end of the workload crashed");
  t.deepEqual(
    [...new Set(steps.map((step) => results.get(step)!.step))].sort(),
    Object.keys(OUTCOME_AT).sort(),
    "every fault point of CREATE and DESTROY was crashed at",
  );
  for (const step of steps) t.deepEqual(results.get(step)!.diffs, [], `kernel differences after a crash at step ${step} (${results.get(step)!.step})`);
});

test("SIGKILLs at random instants under concurrent load are recovered exactly, and retried operations answer whole", async (t) => {
  t.timeout(5 * 60_000);
  const topology = await Topology.create({ teardown: t });
  let service = await startService({ nodeNs: topology.node, pool: POOL, logLevel: "warn" });
  t.teardown(() => service.stop());
  const ids = Array.from({ length: 24 }, (_, i) => `r${i}`);
  const nextRandom = seededRandom(0x5eed);
  for (let round = 0; round < 5; round++) {
    const client = new WorkloadClient(service.address);
    const acknowledged = new Map<string, InstanceNetwork>((await client.list()).map((n) => [n.instanceId, n]));
    // The operation each id had in flight at the kill: where it was cut short is unknown here.
    const inFlight = new Map<string, Op>();
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
          inFlight.set(id, op);
          try {
            const network = await run(client, op);
            if (op.action === "create") acknowledged.set(id, network);
            else acknowledged.delete(id);
            inFlight.delete(id);
          } catch {
            // The kill: this operation's outcome is unknown to the client, which retries it.
          } finally {
            busy.delete(id);
          }
        }
      }),
    );
    await killer;
    client.close();
    await service.exited;
    const diffs = await recover(t, topology, service, {
      present: acknowledged,
      uncertain: new Set(inFlight.keys()),
      retried: [...inFlight.values()],
    });
    t.deepEqual(diffs, [], `kernel differences after random kill ${round + 1} at ${killAfter} ms`);
    service = await startService({ nodeNs: topology.node, pool: POOL, socketPath: service.socketPath, logLevel: "warn" });
    // Clear the probe instance recover() left behind, so the next round starts from acknowledged state only.
    const cleaner = new WorkloadClient(service.address);
    await cleaner.destroy("probe");
    cleaner.close();
  }
});
