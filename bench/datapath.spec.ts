// Unit specs of the data path's pure parts: the client's answers and the order of the samples.
import test from "ava";
import { interleaving, parseProbeLine } from "./datapath.js";
import { churnInstance, datapathInstance, planInstances } from "./instances.js";

test("parseProbeLine reads a time in µs as ms, an error code, and nothing else", (t) => {
  t.deepEqual(parseProbeLine("7 ok 1234.5"), { id: 7, ms: 1.2345 });
  t.deepEqual(parseProbeLine("8 err ECONNREFUSED"), { id: 8, error: "ECONNREFUSED" });
  t.is(parseProbeLine("ready"), undefined);
  t.is(parseProbeLine("9 ok"), undefined);
});

test("interleaving alternates A B B A, as many of each", (t) => {
  t.deepEqual(interleaving(4), ["a", "b", "b", "a", "a", "b", "b", "a"]);
  const order = interleaving(101);
  t.is(order.filter((side) => side === "a").length, 101);
  t.is(order.filter((side) => side === "b").length, 101);
});

test("the data path's instance and the churn's take ports no other instance of the size has", (t) => {
  const plan = planInstances({ pool: "10.220.0.0/16", size: 5000, warmup: 30, samples: 100, concurrent: 100 });
  const taken = new Set([...plan.fill, ...plan.warmup, ...plan.sequential, ...plan.concurrent].map((i) => i.hostPort));
  const datapath = datapathInstance("10.220.0.0/16", 5000);
  t.is(datapath.hostPort, 15_000);
  t.false(taken.has(datapath.hostPort));
  const churn = Array.from({ length: 64 }, (_, slot) => churnInstance("10.220.0.0/16", slot, 3));
  t.is(new Set(churn.map((i) => i.hostPort)).size, 64);
  t.false(churn.some((i) => taken.has(i.hostPort) || i.hostPort === datapath.hostPort));
  t.is(churn[5]!.id, "churn-5-3");
  t.not(churnInstance("10.220.0.0/16", 5, 4).tapName, churn[5]!.tapName);
  t.throws(() => churnInstance("10.220.0.0/16", 64, 0), { instanceOf: RangeError });
});
