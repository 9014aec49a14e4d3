import test from "ava";
import { setTimeout as sleep } from "node:timers/promises";
import { KeyedLock } from "./keyed-lock.js";

test("work on one key runs in order, one at a time", async (t) => {
  const lock = new KeyedLock();
  const log: string[] = [];
  const step = (name: string, ms: number) => lock.run("a", async () => {
    log.push(`${name}+`);
    await sleep(ms);
    log.push(`${name}-`);
  });
  await Promise.all([step("1", 20), step("2", 1), step("3", 5)]);
  t.deepEqual(log, ["1+", "1-", "2+", "2-", "3+", "3-"]);
});

test("different keys run concurrently", async (t) => {
  const lock = new KeyedLock();
  let running = 0;
  let peak = 0;
  await Promise.all(
    ["a", "b", "c"].map((key) => lock.run(key, async () => {
      peak = Math.max(peak, ++running);
      await sleep(10);
      running--;
    })),
  );
  t.is(peak, 3);
});

test("a failure releases the key for the next operation", async (t) => {
  const lock = new KeyedLock();
  await t.throwsAsync(lock.run("a", async () => { throw new Error("boom"); }), { message: "boom" });
  t.is(await lock.run("a", async () => 42), 42);
});
