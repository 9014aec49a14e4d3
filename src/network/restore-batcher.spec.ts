import test from "ava";
import type { Rule } from "./iptables-rules.js";
import { RestoreBatcher } from "./restore-batcher.js";

const rule = (n: number): Rule => ({ table: "filter", chain: "RIKLET-FORWARD", spec: `-s 10.220.0.${n}/32 -j ACCEPT` });

/** A restore that records its input and fails on any text containing a marker. */
function recordingRestore(failOn?: string) {
  const calls: string[] = [];
  let release: (() => void) | undefined;
  const restore = async (text: string) => {
    calls.push(text);
    if (calls.length === 1) await new Promise<void>((resolve) => (release = resolve));
    if (failOn !== undefined && text.includes(failOn)) throw new Error("iptables-restore: rule not found");
  };
  return { calls, restore, release: () => release?.() };
}

test("batches that arrive while a restore runs go together in the next one", async (t) => {
  const recorder = recordingRestore();
  const batcher = new RestoreBatcher(recorder.restore);
  const first = batcher.submit({ append: [rule(1)] });
  const later = [2, 3, 4].map((n) => batcher.submit({ append: [rule(n)] }));
  recorder.release();
  await Promise.all([first, ...later]);
  t.is(recorder.calls.length, 2);
  t.is(recorder.calls[1], "*filter\n-A RIKLET-FORWARD -s 10.220.0.2/32 -j ACCEPT\n-A RIKLET-FORWARD -s 10.220.0.3/32 -j ACCEPT\n-A RIKLET-FORWARD -s 10.220.0.4/32 -j ACCEPT\nCOMMIT\n");
});

test("when a merged restore fails, each batch is retried alone and only the bad one fails", async (t) => {
  const recorder = recordingRestore("10.220.0.3/32");
  const batcher = new RestoreBatcher(recorder.restore);
  const first = batcher.submit({ append: [rule(1)] });
  const [good, bad, alsoGood] = [2, 3, 4].map((n) => batcher.submit({ delete: [rule(n)] }));
  recorder.release();
  await first;
  await t.notThrowsAsync(good!);
  await t.throwsAsync(bad!, { message: /rule not found/ });
  await t.notThrowsAsync(alsoGood!);
  t.is(recorder.calls.length, 5, "one merged attempt, then three alone");
});

test("a lone failing batch fails without a retry", async (t) => {
  const calls: string[] = [];
  const batcher = new RestoreBatcher(async (text) => {
    calls.push(text);
    throw new Error("boom");
  });
  await t.throwsAsync(batcher.submit({ append: [rule(1)] }), { message: "boom" });
  t.is(calls.length, 1);
});
