// Unit specs of the churn loop and its arithmetic, with fake calls and a fake clock (no service, no kernel).
import test from "ava";
import { churnRate, runChurn, slowestSecond } from "./churn.js";

/** A clock that moves only when a fake call takes time. */
function fakeClock() {
  let time = 0;
  return { now: () => time, advance: (ms: number) => (time += ms) };
}

test("runChurn keeps the slots busy until the duration, then lets the cycles in flight end", async (t) => {
  const clock = fakeClock();
  let inFlight = 0;
  let peak = 0;
  const seen = new Set<string>();
  const call = (what: string) => async (slot: number, cycle: number) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    seen.add(`${what} ${slot}/${cycle}`);
    await Promise.resolve();
    clock.advance(5);
    inFlight--;
  };
  const result = await runChurn({ create: call("create"), destroy: call("destroy") }, { inFlight: 4, durationMs: 1000, now: clock.now });
  t.is(peak, 4);
  t.is(result.failures.length, 0);
  t.is(result.createMs.length, result.cycles);
  t.is(result.destroyMs.length, result.cycles);
  t.true(result.elapsedMs >= 1000);
  t.true(seen.has("create 3/0") && seen.has("destroy 3/0"));
  t.is(result.perSecond.reduce((a, b) => a + b, 0), result.cycles);
});

test("a failed CREATE is still destroyed, counted as a failure and not as a cycle", async (t) => {
  const clock = fakeClock();
  const destroyed: string[] = [];
  const result = await runChurn(
    {
      create: async (_slot, cycle) => {
        clock.advance(100);
        if (cycle === 1) throw new Error("boom");
      },
      destroy: async (slot, cycle) => {
        clock.advance(100);
        destroyed.push(`${slot}/${cycle}`);
      },
    },
    { inFlight: 1, durationMs: 500, now: clock.now },
  );
  t.deepEqual(result.failures, ["create 0/1: boom"]);
  t.true(destroyed.includes("0/1"));
  t.is(result.cycles, 2); // cycles 0 and 2 completed; 1 failed
});

test("churnRate is cycles per second of elapsed time; slowestSecond skips a partial last second", (t) => {
  t.is(churnRate({ cycles: 300, elapsedMs: 2000 }), 150);
  t.is(churnRate({ cycles: 0, elapsedMs: 0 }), 0);
  t.is(slowestSecond({ perSecond: [150, 90, 160, 3], elapsedMs: 3100 }), 90);
  t.is(slowestSecond({ perSecond: [150, 140], elapsedMs: 2000 }), 140);
  t.is(slowestSecond({ perSecond: [12], elapsedMs: 400 }), undefined);
});
