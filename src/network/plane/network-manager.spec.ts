import test, { type ExecutionContext } from "ava";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import winston from "winston";
import { captureLogger } from "../../../test/helpers/capture-logger.js";
import { diskFull } from "../../../test/helpers/fs-faults.js";
import { functionNetwork } from "../../../test/fixtures/function-network.js";
import type { InstanceNetwork } from "../model/instance-network.js";
import { InstanceStore } from "./instance-store.js";
import { NetworkError, type NetworkErrorCode } from "../model/network-error.js";
import { NetworkManager } from "./network-manager.js";
import { rollbackFailuresOf } from "../support/rollback.js";
import { StrategyRegistry } from "./strategy-registry.js";
import type { WorkloadDefinition } from "../model/workload-definition.js";
import type { WorkloadStrategy } from "../strategies/workload-strategy.js";
import type { Firewall } from "../firewall/firewall.js";
import type { NodeSetup } from "../node/node-setup.js";

const logger = winston.createLogger({ silent: true });

/** Records the calls the manager makes; the kernel side is covered by the integration tests. */
class RecordingStrategy implements WorkloadStrategy {
  readonly calls: string[] = [];
  readonly reserved = new Set<string>();
  failRealize = false;
  failTeardown = false;
  reconciledWith: string[][] = [];

  firewallOf(network: InstanceNetwork) {
    return { instanceId: network.instanceId, guestIp: "10.220.0.2", ports: [] };
  }
  stats() {
    return {};
  }
  async admit(instanceId: string, definition: { name: string }) {
    if (definition.name === "conflicting") throw new NetworkError("already-exists", `conflict for ${instanceId}`);
  }
  /** The exposure each instance was prepared with: what its network depends on. */
  readonly exposures = new Map<string, string>();
  prepare(instanceId: string, definition: WorkloadDefinition): InstanceNetwork {
    this.reserved.add(instanceId);
    this.exposures.set(instanceId, JSON.stringify(definition.spec.function?.exposure));
    return functionNetwork(instanceId, "creating");
  }
  differenceFrom(network: InstanceNetwork, definition: WorkloadDefinition): string | undefined {
    return this.exposures.get(network.instanceId) === JSON.stringify(definition.spec.function?.exposure) ? undefined : "another exposure";
  }
  restore(network: InstanceNetwork) {
    this.reserved.add(network.instanceId);
  }
  realize = async (network: InstanceNetwork) => {
    this.calls.push(`realize ${network.instanceId}`);
    if (this.failRealize) throw new NetworkError("internal", "kernel said no");
  };
  teardown = async (network: InstanceNetwork) => {
    this.calls.push(`teardown ${network.instanceId}`);
    if (this.failTeardown) throw new NetworkError("internal", "rule delete failed");
  };
  release(network: InstanceNetwork) {
    this.reserved.delete(network.instanceId);
  }
  /** The start dumps each reconcile was handed, and what `started` got. */
  readonly starts: unknown[] = [];
  readonly startedWith: unknown[] = [];
  started(start: unknown) {
    this.startedWith.push(start);
  }
  ownsLink(name: string) {
    return name.startsWith("rik");
  }
  reconcile = async (networks: readonly InstanceNetwork[], start?: unknown) => {
    this.starts.push(start);
    this.reconciledWith.push(networks.map((n) => n.instanceId));
    return {};
  };
}

function definition(name = "f", port = 8080, more: { rootfs?: string; replicas?: number } = {}): string {
  return JSON.stringify({
    apiVersion: "v0",
    kind: "Function",
    name,
    ...(more.replicas === undefined ? {} : { replicas: more.replicas }),
    spec: { function: { execution: { rootfs: more.rootfs ?? "r" }, exposure: { port, targetPort: 80, type: "NodePort" } } },
  });
}

async function setup(t: { teardown(fn: () => void): void }, stateDir?: string, options: { logger?: winston.Logger } = {}) {
  const dir = stateDir ?? mkdtempSync(join(tmpdir(), "rik-manager-"));
  if (stateDir === undefined) t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const strategy = new RecordingStrategy();
  const store = InstanceStore.open(dir);
  // The node setup and the firewall as the manager sees them; what they do is the integration tests' business.
  // Dumps once, as NodeSetup gives them: to the reconcile right after the setup.
  let dumps: unknown = { links: [], addresses: [] };
  const node = {
    setup: async () => void strategy.calls.push("setup"),
    takeStartDumps: () => {
      const taken = dumps;
      dumps = undefined;
      return taken;
    },
  } as unknown as NodeSetup;
  const firewallReconciles: string[][] = [];
  const firewall: Firewall = {
    prefetch: () => undefined,
    add: async () => undefined,
    remove: async () => undefined,
    removeAll: async () => ({}),
    reconcile: async (instances) => {
      firewallReconciles.push(instances.map((instance) => instance.instanceId));
      return {};
    },
    close: async () => undefined,
  };
  const manager = new NetworkManager({
    registry: new StrategyRegistry({ Function: strategy, Pod: { unimplemented: "no pods" } }),
    node,
    firewall,
    store,
    logger: options.logger ?? logger,
  });
  await manager.start();
  const events: InstanceNetwork[] = [];
  manager.subscribe((n) => events.push(n));
  return { dir, strategy, store, manager, events, firewallReconciles };
}

const create = (manager: NetworkManager, instanceId: string, text = definition()) => manager.apply({ instanceId, definition: text, action: "create" });
const destroy = (manager: NetworkManager, instanceId: string) => manager.apply({ instanceId, definition: "", action: "destroy" });

test("CREATE records intent, realizes, then acknowledges; the store holds the result", async (t) => {
  const { strategy, store, manager } = await setup(t);
  const network = await create(manager, "a");
  t.is(network.status, "running");
  t.deepEqual(strategy.calls, ["setup", "realize a"]);
  t.like(store.load()[0], { instanceId: "a", status: "running", network: { status: "running" } });
});

test("CREATE is idempotent for the same definition and refused for another", async (t) => {
  const { strategy, manager } = await setup(t);
  const first = await create(manager, "a");
  t.deepEqual(await create(manager, "a"), first);
  const error = await t.throwsAsync(create(manager, "a", definition("f", 9090)), { instanceOf: NetworkError });
  t.is(error.code, "failed-precondition");
  t.deepEqual(strategy.calls, ["setup", "realize a"]);
});

test("a repeated CREATE whose network would be the same is the same instance, whatever else changed", async (t) => {
  const { strategy, manager } = await setup(t);
  const first = await create(manager, "a");
  t.deepEqual(await create(manager, "a", definition("f", 8080, { rootfs: "https://example.org/other.ext4" })), first);
  t.deepEqual(await create(manager, "a", definition("renamed", 8080, { replicas: 3 })), first);
  const error = await t.throwsAsync(create(manager, "a", definition("f", 9090, { rootfs: "https://example.org/other.ext4" })), { instanceOf: NetworkError });
  t.is(error.code, "failed-precondition");
  t.regex(error.message, /instance "a" already exists with another exposure.*DESTROY it first/);
  t.deepEqual(strategy.calls, ["setup", "realize a"]);
});

test("concurrent CREATEs of one instance reach the kernel once", async (t) => {
  const { strategy, manager } = await setup(t);
  await Promise.all(Array.from({ length: 5 }, () => create(manager, "a")));
  t.deepEqual(strategy.calls, ["setup", "realize a"]);
});

test("DESTROY of an unknown instance succeeds and touches nothing", async (t) => {
  const { strategy, manager } = await setup(t);
  t.deepEqual(await destroy(manager, "ghost"), { instanceId: "ghost", kind: "", status: "terminated" });
  t.deepEqual(strategy.calls, ["setup"]);
});

test("bad input is refused before anything is recorded, announced or touched", async (t) => {
  const { strategy, store, manager, events } = await setup(t);
  const cases: [string, string, NetworkErrorCode][] = [
    ["bad id!", definition(), "invalid-argument"],
    ["a", "{", "invalid-argument"],
    ["a", definition().replace('"Function"', '"Nope"'), "invalid-argument"],
    ["a", JSON.stringify({ apiVersion: "v0", kind: "Pod", name: "p", spec: {} }), "unimplemented"],
    ["a", definition("conflicting"), "already-exists"],
  ];
  for (const [instanceId, text, code] of cases) {
    const error = await t.throwsAsync(create(manager, instanceId, text), { instanceOf: NetworkError });
    t.is(error.code, code);
  }
  t.deepEqual(strategy.calls, ["setup"]);
  t.deepEqual(store.load(), []);
  t.deepEqual(events, []);
});

test("get, list and the change events follow the lifecycle", async (t) => {
  const { manager, events } = await setup(t);
  await create(manager, "a");
  t.is(manager.get("a").status, "running");
  t.is(manager.list().length, 1);
  await destroy(manager, "a");
  t.is(t.throws(() => manager.get("a"), { instanceOf: NetworkError }).code, "not-found");
  t.is(t.throws(() => manager.get(`x\n${"y".repeat(10_000)}`))?.message, `no instance "x\\u000a${"y".repeat(38)}"… (10002 characters) on this node; List shows the instances it has`, "a hostile id is not echoed raw");
  t.deepEqual(events.map((e) => e.status), ["creating", "running", "destroying", "terminated"]);
});

test("a failed realize leaves no record and no reservation", async (t) => {
  const { strategy, store, manager, events } = await setup(t);
  strategy.failRealize = true;
  await t.throwsAsync(create(manager, "a"), { message: "kernel said no" });
  t.deepEqual(manager.list(), []);
  t.deepEqual(store.load(), []);
  t.deepEqual([...strategy.reserved], []);
  t.deepEqual(events.map((e) => e.status), ["creating", "failed"]);
});

test("a record that cannot be made durable undoes the kernel work, and nothing is acknowledged", async (t) => {
  const { strategy, store, manager, events } = await setup(t);
  const put = store.put.bind(store);
  store.put = async (record, durability) => {
    if (record.status === "running") throw new Error("disk full");
    return put(record, durability);
  };
  await t.throwsAsync(create(manager, "a"), { message: "disk full" });
  t.deepEqual(strategy.calls.slice(-2), ["realize a", "teardown a"]);
  t.deepEqual(manager.list(), []);
  t.deepEqual(store.load(), []);
  t.deepEqual([...strategy.reserved], []);
  t.deepEqual(events.map((e) => e.status), ["creating", "failed"]);
});

test("a failed teardown keeps the instance, marked failed, until a DESTROY succeeds", async (t) => {
  const { strategy, store, manager } = await setup(t);
  await create(manager, "a");
  strategy.failTeardown = true;
  await t.throwsAsync(destroy(manager, "a"), { message: "rule delete failed" });
  t.is(manager.get("a").status, "failed");
  t.like(store.load()[0], { status: "destroying" });
  t.true(strategy.reserved.has("a"), "the allocation is not leaked to another instance");
  t.is((await t.throwsAsync(create(manager, "a"), { instanceOf: NetworkError })).code, "failed-precondition");
  strategy.failTeardown = false;
  t.is((await destroy(manager, "a")).status, "terminated");
  t.deepEqual(store.load(), []);
  t.false(strategy.reserved.has("a"));
});

test("at start, acknowledged instances are kept and operations cut short are dropped", async (t) => {
  const { dir, store, manager } = await setup(t);
  await create(manager, "kept");
  await manager.close();
  const running = store.load()[0]!;
  await store.put({ ...running, instanceId: "half-created", status: "creating", network: { ...running.network, instanceId: "half-created" } });
  await store.put({ ...running, instanceId: "half-destroyed", status: "destroying", network: { ...running.network, instanceId: "half-destroyed" } });
  store.close();

  const restarted = await setup(t, dir);
  t.deepEqual(restarted.strategy.reconciledWith, [["kept"]], "reconcile makes the kernel hold only acknowledged instances");
  t.deepEqual(restarted.manager.list().map((n) => n.instanceId), ["kept"]);
  t.deepEqual(restarted.store.load().map((r) => r.instanceId), ["kept"]);
  t.deepEqual([...restarted.strategy.reserved], ["kept"]);
});

test("after close, new operations are refused as UNAVAILABLE", async (t) => {
  const { manager } = await setup(t);
  await manager.close();
  const error = await t.throwsAsync(create(manager, "a"), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
});

/**
 * The disk fills up with the "running" line: the intent fits (e.g. in the journal's last
 * page), the "running" line does not, nor the removal after it. Returns what frees it.
 */
function diskFullFromRunningRecord(t: { teardown(fn: () => void): void }, store: InstanceStore): () => void {
  let full = false;
  diskFull(t, () => full);
  const put = store.put.bind(store);
  store.put = async (record, durability) => {
    if (record.status === "running") full = true;
    return put(record, durability);
  };
  return () => {
    full = false;
    store.put = put;
  };
}

test.serial("a CREATE the state directory cannot record is UNAVAILABLE naming it, touches nothing, and works once there is space", async (t) => {
  const { dir, strategy, manager, store } = await setup(t);
  let full = true;
  diskFull(t, () => full);
  const error = await t.throwsAsync(create(manager, "a"), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
  t.true(error.message.includes(`state directory ${dir}`), error.message);
  t.regex(error.message, /free space on it/);
  t.deepEqual(strategy.calls, ["setup"], "the kernel was not touched");
  t.deepEqual(manager.list(), []);
  t.deepEqual([...strategy.reserved], []);
  full = false;
  t.is((await create(manager, "a")).status, "running");
  t.like(store.load()[0], { instanceId: "a", status: "running" });
});

test.serial("a CREATE whose running record and rollback record both fail: the first error, nothing left, and the next CREATE works", async (t) => {
  const { dir, strategy, manager, store } = await setup(t);
  const free = diskFullFromRunningRecord(t, store);
  const error = await t.throwsAsync(create(manager, "a"), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
  t.regex(error.message, /cannot record instance "a" \(running\) in state directory/, "the error is the running record's, not the rollback's");
  t.deepEqual(strategy.calls, ["setup", "realize a", "teardown a"]);
  t.deepEqual(manager.list(), [], "not stuck in creating");
  t.deepEqual([...strategy.reserved], []);
  free();
  t.is((await create(manager, "a")).status, "running", "not refused as being destroyed");
  await manager.close();
  store.close();
  const restarted = await setup(t, dir);
  t.deepEqual(restarted.manager.list().map((n) => n.instanceId), ["a"]);
});

test.serial("a stale creating line that a failed rollback left is undone at the next start", async (t) => {
  const { dir, manager, store } = await setup(t);
  const free = diskFullFromRunningRecord(t, store);
  await t.throwsAsync(create(manager, "a"), { instanceOf: NetworkError });
  free();
  await manager.close();
  store.close();
  t.regex(readFileSync(join(dir, "instances.journal"), "utf8"), /"status":"creating"/, "the journal still says creating");
  const restarted = await setup(t, dir);
  t.deepEqual(restarted.strategy.reconciledWith, [[]], "nothing of it is desired in the kernel");
  t.deepEqual(restarted.manager.list(), []);
  t.deepEqual(restarted.store.load(), []);
  t.deepEqual([...restarted.strategy.reserved], []);
});

test.serial("a DESTROY the state directory cannot record is UNAVAILABLE and leaves the instance running, untouched", async (t) => {
  const { dir, strategy, manager, store } = await setup(t);
  const network = await create(manager, "a");
  let full = true;
  diskFull(t, () => full);
  const error = await t.throwsAsync(destroy(manager, "a"), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
  t.true(error.message.includes(`state directory ${dir}`), error.message);
  t.deepEqual(manager.get("a"), network);
  t.deepEqual(strategy.calls, ["setup", "realize a"], "no teardown");
  t.true(strategy.reserved.has("a"));
  full = false;
  t.is((await destroy(manager, "a")).status, "terminated");
  t.deepEqual(store.load(), []);
});

test.serial("a DESTROY whose record removal fails succeeds, logs it, and the next start finishes it", async (t) => {
  const { logger: capturing, lines } = captureLogger();
  const { dir, strategy, manager, store } = await setup(t, undefined, { logger: capturing });
  await create(manager, "a");
  const put = store.put.bind(store);
  let full = false;
  diskFull(t, () => full);
  store.put = async (record, durability) => {
    await put(record, durability);
    if (record.status === "destroying") full = true;
  };
  t.is((await destroy(manager, "a")).status, "terminated");
  t.deepEqual(strategy.calls, ["setup", "realize a", "teardown a"]);
  t.deepEqual(manager.list(), []);
  t.false(strategy.reserved.has("a"));
  t.truthy(lines.find((line) => line["level"] === "warn" && line["instance_id"] === "a" && /cannot take its removal yet/.test(String(line["message"]))));
  full = false;
  await manager.close();
  store.close();
  const restarted = await setup(t, dir);
  t.deepEqual(restarted.manager.list(), []);
  t.deepEqual(restarted.store.load(), []);
});

/**
 * A CREATE whose realize fails once its "running" line is written, on a disk that fills up
 * as it fails: the removal of the instance cannot be written, and the journal's last line of
 * it says "running". Returns what frees the disk.
 */
async function failedCreateWithRunningLine(t: ExecutionContext) {
  const { logger: capturing, lines } = captureLogger();
  const harness = await setup(t, undefined, { logger: capturing });
  let full = false;
  diskFull(t, () => full);
  harness.strategy.realize = async () => {
    full = true;
    throw new NetworkError("internal", "kernel said no");
  };
  await t.throwsAsync(create(harness.manager, "a"), { message: "kernel said no" });
  t.deepEqual(harness.manager.list(), []);
  t.truthy(lines.find((line) => line["level"] === "warn" && line["instance_id"] === "a" && /cannot take its removal yet/.test(String(line["message"]))));
  const journal = readFileSync(join(harness.dir, "instances.journal"), "utf8").split("\n").filter(Boolean);
  t.like(JSON.parse(journal.at(-1)!), { put: { instanceId: "a", status: "running" } }, "the test's premise: the journal's last line of it says running");
  return { ...harness, free: () => void (full = false) };
}

test.serial("a failed CREATE whose removal the disk refused: the next resync writes it once there is room, and a restart does not bring it back", async (t) => {
  const { dir, manager, store, free } = await failedCreateWithRunningLine(t);
  free();
  await manager.reconcile("resync");
  // A crash: the manager is never closed.
  store.close();
  const restarted = await setup(t, dir);
  t.deepEqual(restarted.strategy.reconciledWith, [[]], "nothing of it is re-created");
  t.deepEqual(restarted.manager.list(), []);
});

test.serial("a failed CREATE whose removal the disk refused: a stop writes it once there is room, and the restart does not bring it back", async (t) => {
  const { dir, manager, store, free } = await failedCreateWithRunningLine(t);
  free();
  await manager.close();
  store.close();
  const restarted = await setup(t, dir);
  t.deepEqual(restarted.manager.list(), []);
});

test.serial("a failed CREATE whose removal the disk refused: a crash before the journal takes a line again brings it back, as docs/state-and-recovery.md says, until a DESTROY", async (t) => {
  const { dir, store, free } = await failedCreateWithRunningLine(t);
  store.close();
  free();
  const restarted = await setup(t, dir);
  t.deepEqual(restarted.manager.list().map((n) => [n.instanceId, n.status]), [["a", "running"]]);
  t.is((await destroy(restarted.manager, "a")).status, "terminated");
  t.deepEqual(restarted.store.load(), []);
});

test("a CREATE whose rollback cannot tear the network down: the first error, and the instance kept with its allocation until a DESTROY", async (t) => {
  const { dir, strategy, manager, store, events } = await setup(t);
  const put = store.put.bind(store);
  store.put = async (record, durability) => {
    if (record.status === "running") throw new NetworkError("unavailable", "disk full");
    return put(record, durability);
  };
  strategy.failTeardown = true;
  const error = await t.throwsAsync(create(manager, "a"), { message: "disk full" });
  t.deepEqual(rollbackFailuresOf(error).map((failure) => failure.step), ["tear the network down"]);
  t.is(manager.get("a").status, "failed");
  t.true(strategy.reserved.has("a"), "its /30 is not handed to another instance while its TAP may still hold it");
  t.deepEqual(events.map((e) => e.status), ["creating", "failed"]);
  t.is((await t.throwsAsync(create(manager, "a"), { instanceOf: NetworkError })).code, "failed-precondition");
  store.put = put;
  strategy.failTeardown = false;
  t.is((await destroy(manager, "a")).status, "terminated");
  t.false(strategy.reserved.has("a"));
  const reopened = InstanceStore.open(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(reopened.load(), []);
});

test("a reconcile hands the firewall every running instance, and the start dumps go to the start reconcile only, then to started", async (t) => {
  const { strategy, manager, firewallReconciles } = await setup(t);
  t.deepEqual(strategy.starts.length, 1);
  t.truthy(strategy.starts[0], "the start reconcile got the setup's dumps");
  t.deepEqual(strategy.startedWith, [strategy.starts[0]]);
  await create(manager, "a");
  await create(manager, "b", definition("f", 8081));
  await manager.reconcile("resync");
  t.deepEqual(firewallReconciles, [[], ["a", "b"]]);
  t.deepEqual(strategy.starts.slice(1), [undefined], "a resync reads the kernel itself");
  t.is(strategy.startedWith.length, 1, "started once");
});
