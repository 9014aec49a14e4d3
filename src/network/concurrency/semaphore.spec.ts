import test from "ava";
import { setTimeout as sleep } from "node:timers/promises";
import { Semaphore } from "./semaphore.js";

test("runs at most `limit` tasks at once and all of them in the end", async (t) => {
  const semaphore = new Semaphore(3);
  let running = 0;
  let peak = 0;
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      semaphore.run(async () => {
        peak = Math.max(peak, ++running);
        await sleep(5);
        running--;
        return i;
      }),
    ),
  );
  t.is(peak, 3);
  t.deepEqual(results, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test("a failing task frees its slot", async (t) => {
  const semaphore = new Semaphore(1);
  await t.throwsAsync(semaphore.run(async () => { throw new Error("boom"); }), { message: "boom" });
  t.is(await semaphore.run(async () => 1), 1);
});
