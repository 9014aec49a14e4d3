import test from "ava";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import winston from "winston";
import type { InstanceNetwork } from "./instance-network.js";
import { InstanceStore } from "./instance-store.js";
import { NetworkError, type NetworkErrorCode } from "./network-error.js";
import { NetworkManager } from "./network-manager.js";
import { StrategyRegistry } from "./strategy-registry.js";
import type { WorkloadStrategy } from "./workload-strategy.js";

const logger = winston.createLogger({ silent: true });

/** Records the calls the manager makes; the kernel side is covered by the integration tests. */
class RecordingStrategy implements WorkloadStrategy {
  readonly calls: string[] = [];
  readonly reserved = new Set<string>();
  failRealize = false;
  failTeardown = false;
  reconciledWith: string[][] = [];

  setupNode = async () => void this.calls.push("setup");
  async admit(instanceId: string, definition: { name: string }) {
    if (definition.name === "conflicting") throw new NetworkError("already-exists", `conflict for ${instanceId}`);
  }
  prepare(instanceId: string): InstanceNetwork {
    this.reserved.add(instanceId);
    return { instanceId, kind: "Function", status: "creating" };
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
  reconcile = async (networks: readonly InstanceNetwork[]) => {
    this.reconciledWith.push(networks.map((n) => n.instanceId));
    return {};
  };
}

function definition(name = "f", port = 8080): string {
  return JSON.stringify({
    apiVersion: "v0",
    kind: "Function",
    name,
    spec: { function: { execution: { rootfs: "r" }, exposure: { port, targetPort: 80, type: "NodePort" } } },
  });
}

async function setup(t: { teardown(fn: () => void): void }, stateDir?: string) {
  const dir = stateDir ?? mkdtempSync(join(tmpdir(), "rik-manager-"));
  if (stateDir === undefined) t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const strategy = new RecordingStrategy();
  const store = InstanceStore.open(dir);
  const manager = new NetworkManager({
    registry: new StrategyRegistry({ Function: strategy, Pod: { unimplemented: "no pods" } }),
    store,
    logger,
  });
  await manager.start();
  const events: InstanceNetwork[] = [];
  manager.subscribe((n) => events.push(n));
  return { dir, strategy, store, manager, events };
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
