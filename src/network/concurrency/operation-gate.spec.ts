import test from "ava";
import { setTimeout as sleep } from "node:timers/promises";
import { OperationGate } from "./operation-gate.js";

test("shared work runs concurrently", async (t) => {
  const gate = new OperationGate();
  let running = 0;
  let peak = 0;
  await Promise.all(
    [1, 2, 3].map(() => gate.shared(async () => {
      peak = Math.max(peak, ++running);
      await sleep(10);
      running--;
    })),
  );
  t.is(peak, 3);
});

test("exclusive work waits for shared work in flight and holds new shared work back", async (t) => {
  const gate = new OperationGate();
  const log: string[] = [];
  const before = gate.shared(async () => {
    log.push("shared-1 start");
    await sleep(20);
    log.push("shared-1 end");
  });
  const exclusive = gate.exclusive(async () => {
    log.push("exclusive start");
    await sleep(10);
    log.push("exclusive end");
  });
  const after = gate.shared(async () => void log.push("shared-2"));
  await Promise.all([before, exclusive, after]);
  t.deepEqual(log, ["shared-1 start", "shared-1 end", "exclusive start", "exclusive end", "shared-2"]);
});

test("exclusive sections run one after another, and a failure reopens the gate", async (t) => {
  const gate = new OperationGate();
  const log: string[] = [];
  const first = gate.exclusive(async () => {
    log.push("a");
    await sleep(5);
    throw new Error("reconcile failed");
  });
  const second = gate.exclusive(async () => void log.push("b"));
  await t.throwsAsync(first, { message: "reconcile failed" });
  await second;
  t.is(await gate.shared(async () => 7), 7);
  t.deepEqual(log, ["a", "b"]);
});
