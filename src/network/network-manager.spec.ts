import test from "ava";
import winston from "winston";
import type { InstanceNetwork } from "./instance-network.js";
import { NetworkError, type NetworkErrorCode } from "./network-error.js";
import { NetworkManager } from "./network-manager.js";
import { StrategyRegistry } from "./strategy-registry.js";
import type { WorkloadStrategy } from "./workload-strategy.js";

const logger = winston.createLogger({ silent: true });

/** Records calls; the kernel side is covered by the integration tests. */
function recordingStrategy() {
  const calls: string[] = [];
  let failNext = false;
  const strategy: WorkloadStrategy & { calls: string[]; failNextCreate(): void } = {
    calls,
    failNextCreate: () => (failNext = true),
    setupNode: async () => void calls.push("setup"),
    admit: (instanceId, definition) => {
      if (definition.name === "conflicting") throw new NetworkError("already-exists", `conflict for ${instanceId}`);
    },
    create: async (instanceId) => {
      calls.push(`create ${instanceId}`);
      if (failNext) {
        failNext = false;
        throw new NetworkError("internal", "kernel said no");
      }
      return { instanceId, kind: "Function", status: "running" };
    },
    destroy: async (network) => void calls.push(`destroy ${network.instanceId}`),
  };
  return strategy;
}

function definition(port = 8080): string {
  return JSON.stringify({
    apiVersion: "v0",
    kind: "Function",
    name: "f",
    spec: { function: { execution: { rootfs: "r" }, exposure: { port, targetPort: 80, type: "NodePort" } } },
  });
}

async function setup() {
  const strategy = recordingStrategy();
  const manager = new NetworkManager(new StrategyRegistry({ Function: strategy, Pod: { unimplemented: "no pods" } }), logger);
  await manager.start();
  const events: InstanceNetwork[] = [];
  manager.subscribe((n) => events.push(n));
  return { strategy, manager, events };
}

test("CREATE is idempotent for the same definition and refused for another", async (t) => {
  const { strategy, manager } = await setup();
  const first = await manager.apply({ instanceId: "a", definition: definition(), action: "create" });
  const again = await manager.apply({ instanceId: "a", definition: definition(), action: "create" });
  t.deepEqual(again, first);
  const error = await t.throwsAsync(manager.apply({ instanceId: "a", definition: definition(9090), action: "create" }), {
    instanceOf: NetworkError,
  });
  t.is(error.code, "failed-precondition");
  t.deepEqual(strategy.calls, ["setup", "create a"]);
});

test("concurrent CREATEs of one instance reach the strategy once", async (t) => {
  const { strategy, manager } = await setup();
  await Promise.all(Array.from({ length: 5 }, () => manager.apply({ instanceId: "a", definition: definition(), action: "create" })));
  t.deepEqual(strategy.calls, ["setup", "create a"]);
});

test("DESTROY of an unknown instance succeeds and touches nothing", async (t) => {
  const { strategy, manager } = await setup();
  const result = await manager.apply({ instanceId: "ghost", definition: "", action: "destroy" });
  t.deepEqual(result, { instanceId: "ghost", kind: "", status: "terminated" });
  t.deepEqual(strategy.calls, ["setup"]);
});

test("bad input never reaches the strategy", async (t) => {
  const { strategy, manager } = await setup();
  const cases: [string, string, NetworkErrorCode][] = [
    ["bad id!", definition(), "invalid-argument"],
    ["a", "{", "invalid-argument"],
    ["a", definition().replace('"Function"', '"Nope"'), "invalid-argument"],
    ["a", JSON.stringify({ apiVersion: "v0", kind: "Pod", name: "p", spec: {} }), "unimplemented"],
  ];
  for (const [instanceId, text, code] of cases) {
    const error = await t.throwsAsync(manager.apply({ instanceId, definition: text, action: "create" }), { instanceOf: NetworkError });
    t.is(error.code, code);
  }
  t.deepEqual(strategy.calls, ["setup"]);
  t.deepEqual(manager.list(), []);
});

test("get, list and the change events follow the lifecycle", async (t) => {
  const { manager, events } = await setup();
  await manager.apply({ instanceId: "a", definition: definition(), action: "create" });
  t.is(manager.get("a").status, "running");
  t.is(manager.list().length, 1);
  await manager.apply({ instanceId: "a", definition: "", action: "destroy" });
  t.is(t.throws(() => manager.get("a"), { instanceOf: NetworkError }).code, "not-found");
  t.deepEqual(
    events.map((e) => e.status),
    ["creating", "running", "destroying", "terminated"],
  );
});

test("a CREATE the strategy does not admit is refused before anything is announced", async (t) => {
  const { strategy, manager, events } = await setup();
  const text = definition().replace('"name":"f"', '"name":"conflicting"');
  const error = await t.throwsAsync(manager.apply({ instanceId: "a", definition: text, action: "create" }), { instanceOf: NetworkError });
  t.is(error.code, "already-exists");
  t.deepEqual(events, []);
  t.deepEqual(strategy.calls, ["setup"]);
});

test("a failed CREATE leaves no record and reports failed", async (t) => {
  const { strategy, manager, events } = await setup();
  strategy.failNextCreate();
  await t.throwsAsync(manager.apply({ instanceId: "a", definition: definition(), action: "create" }), { message: "kernel said no" });
  t.deepEqual(manager.list(), []);
  t.deepEqual(events.map((e) => e.status), ["creating", "failed"]);
  await manager.apply({ instanceId: "a", definition: definition(), action: "create" });
  t.is(manager.get("a").status, "running");
});

test("after close, new operations are refused as UNAVAILABLE", async (t) => {
  const { manager } = await setup();
  await manager.close();
  const error = await t.throwsAsync(manager.apply({ instanceId: "a", definition: definition(), action: "create" }), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
});
