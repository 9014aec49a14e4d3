// Unit specs of the benchmark's pure helpers (ava, run by `npm test` and `npx ava bench/`).
import test from "ava";
import { percentile, round, summarize } from "./stats.js";
import { forEachLimit } from "./concurrency.js";

test("percentile is nearest-rank over unsorted samples", (t) => {
  const samples = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1
  t.is(percentile(samples, 50), 50);
  t.is(percentile(samples, 99), 99);
  t.is(percentile(samples, 100), 100);
  t.is(percentile([7], 50), 7);
  t.is(percentile([7], 99), 7);
  t.is(percentile([1, 2, 3, 4], 50), 2);
  t.is(percentile([1, 2, 3, 4], 99), 4);
});

test("percentile of nothing is NaN, and p must be in (0, 100]", (t) => {
  t.truthy(Number.isNaN(percentile([], 50)));
  t.throws(() => percentile([1], 0), { instanceOf: RangeError });
  t.throws(() => percentile([1], 101), { instanceOf: RangeError });
});

test("summarize gives count, p50, p99, mean, min, max", (t) => {
  t.deepEqual(summarize([3, 1, 2]), { count: 3, p50: 2, p99: 3, mean: 2, min: 1, max: 3 });
  t.is(summarize([]), undefined);
});

test("round keeps 3, 2 or 1 decimals by magnitude", (t) => {
  t.is(round(1.23456), 1.235);
  t.is(round(12.3456), 12.35);
  t.is(round(123.456), 123.5);
  t.truthy(Number.isNaN(round(Number.NaN)));
});

test("forEachLimit never has more than the limit in flight, and runs every item", async (t) => {
  let inFlight = 0;
  let peak = 0;
  const seen: number[] = [];
  await forEachLimit([1, 2, 3, 4, 5, 6, 7], 3, async (item) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 5));
    seen.push(item);
    inFlight--;
  });
  t.is(peak, 3);
  t.deepEqual(seen.sort(), [1, 2, 3, 4, 5, 6, 7]);
});

test("forEachLimit rejects with the first failure", async (t) => {
  await t.throwsAsync(
    forEachLimit([1, 2, 3], 2, async (item) => {
      if (item === 2) throw new Error("boom");
    }),
    { message: /boom/ },
  );
});
