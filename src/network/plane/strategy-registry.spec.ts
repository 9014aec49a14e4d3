import test from "ava";
import { NetworkError } from "../model/network-error.js";
import { StrategyRegistry } from "./strategy-registry.js";
import type { WorkloadStrategy } from "../strategies/workload-strategy.js";

const fn = { kind: "Function" } as unknown as WorkloadStrategy;
const registry = new StrategyRegistry({ Function: fn, Pod: { unimplemented: "Pod workloads are not supported yet" } });

test("resolves a registered kind; only implemented kinds are listed as strategies", (t) => {
  t.is(registry.resolve("Function"), fn);
  t.deepEqual(registry.entries, [["Function", fn]]);
  t.deepEqual(registry.kinds, ["Function", "Pod"]);
});

test("a known but unimplemented kind is UNIMPLEMENTED with its reason", (t) => {
  const error = t.throws(() => registry.resolve("Pod"), { instanceOf: NetworkError });
  t.is(error.code, "unimplemented");
  t.is(error.message, "Pod workloads are not supported yet");
});

test("an unknown kind is INVALID_ARGUMENT naming the accepted kinds", (t) => {
  const error = t.throws(() => registry.resolve("VirtualMachine"), { instanceOf: NetworkError });
  t.is(error.code, "invalid-argument");
  t.regex(error.message, /kind "VirtualMachine" is not supported; accepted kinds: Function, Pod/);
});

test("every kind with a network of its own must have its strategy: without it, the registry does not compile", (t) => {
  // @ts-expect-error Function is a member of the InstanceNetwork union, so its entry is required.
  const incomplete = new StrategyRegistry({ Pod: { unimplemented: "not yet" } });
  // @ts-expect-error nor may it be left unimplemented.
  const unimplemented = new StrategyRegistry({ Function: { unimplemented: "not yet" } });
  t.deepEqual([incomplete.kinds, unimplemented.kinds], [["Pod"], ["Function"]], "what typecheck refuses still builds at run time");
});
