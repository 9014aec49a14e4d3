import test from "ava";
import type { InstanceNetwork } from "../network/index.js";
import { createMetrics, type PlaneView } from "./create-metrics.js";

/** The sample lines of an exposition, without comments. */
async function samples(metrics: ReturnType<typeof createMetrics>): Promise<string[]> {
  return (await metrics.registry.metrics()).split("\n").filter((line) => line.startsWith("rik_network_") && !line.includes("process_") && !line.includes("nodejs_"));
}

/** A plane whose pool use is its instances that have a kind. */
function plane(networks: InstanceNetwork[]): PlaneView {
  return {
    list: () => networks,
    stats: () => ({ poolSize: 64, poolUsed: networks.filter(({ kind }) => kind !== "").length, strategies: { Function: { spare_taps: 3 } } }),
  };
}

// Only what the metrics read: the kind and the status.
const instance = (instanceId: string, status: InstanceNetwork["status"], kind = "Function"): InstanceNetwork => ({ instanceId, kind, status }) as InstanceNetwork;

test("RPCs are counted and timed by method and code", async (t) => {
  const metrics = createMetrics();
  metrics.rpcFinished("Apply", "OK", 0.003);
  metrics.rpcFinished("Apply", "OK", 0.2);
  metrics.rpcFinished("Get", "NOT_FOUND", 0.0001);
  const lines = await samples(metrics);
  t.true(lines.includes('rik_network_rpc_calls_total{method="Apply",code="OK"} 2'));
  t.true(lines.includes('rik_network_rpc_calls_total{method="Get",code="NOT_FOUND"} 1'));
  t.true(lines.includes('rik_network_rpc_duration_seconds_count{method="Apply",code="OK"} 2'));
  t.true(lines.includes('rik_network_rpc_duration_seconds_bucket{le="0.005",method="Apply",code="OK"} 1'));
  t.true(lines.includes('rik_network_rpc_duration_seconds_bucket{le="0.25",method="Apply",code="OK"} 2'));
});

test("instances are read from the plane at scrape time, by kind and status, and keep a zero series", async (t) => {
  const metrics = createMetrics();
  const networks = [instance("a", "running"), instance("b", "running"), instance("c", "failed"), instance("gone", "terminated", "")];
  metrics.observePlane(plane(networks));
  let lines = await samples(metrics);
  t.true(lines.includes('rik_network_instances{kind="Function",status="running"} 2'));
  t.true(lines.includes('rik_network_instances{kind="Function",status="failed"} 1'));
  t.true(lines.includes('rik_network_instances{kind="Function",status="creating"} 0'));
  t.false(lines.some((line) => line.includes('kind=""')), "an instance without a kind is not counted");
  t.true(lines.includes("rik_network_pool_size 64"));
  t.true(lines.includes('rik_network_strategy_stat{kind="Function",stat="spare_taps"} 3'), "each strategy's own figures");
  t.true(lines.includes("rik_network_pool_used 3"));

  networks.splice(0);
  lines = await samples(metrics);
  t.true(lines.includes('rik_network_instances{kind="Function",status="running"} 0'));
  t.true(lines.includes("rik_network_pool_used 0"));
});

test("before the plane exists, there are no instances and a pool of 0", async (t) => {
  const lines = await samples(createMetrics());
  t.false(lines.some((line) => line.startsWith("rik_network_instances{")));
  t.true(lines.includes("rik_network_pool_size 0"));
});

test("iptables-restore runs are timed, and the failed ones counted", async (t) => {
  const metrics = createMetrics();
  metrics.iptablesRestore(0.02, true);
  metrics.iptablesRestore(0.5, false);
  const lines = await samples(metrics);
  t.true(lines.includes("rik_network_iptables_restore_duration_seconds_count 2"));
  t.true(lines.includes('rik_network_iptables_restore_duration_seconds_bucket{le="0.025"} 1'));
  t.true(lines.includes("rik_network_iptables_restore_failures_total 1"));
});

test("reconcile actions are counted by trigger and action, reconciles by trigger", async (t) => {
  const metrics = createMetrics();
  metrics.reconciled("start", { chain_created: 2, rule_added: 5, tap_created: 0 });
  metrics.reconciled("resync", { rule_added: 1 });
  metrics.reconciled("resync", {});
  const lines = await samples(metrics);
  t.true(lines.includes('rik_network_reconcile_actions_total{trigger="start",action="chain_created"} 2'));
  t.true(lines.includes('rik_network_reconcile_actions_total{trigger="start",action="rule_added"} 5'));
  t.true(lines.includes('rik_network_reconcile_actions_total{trigger="resync",action="rule_added"} 1'));
  t.false(lines.some((line) => line.includes('action="tap_created"')), "zero counts add no series");
  t.true(lines.includes('rik_network_reconciles_total{trigger="start"} 1'));
  t.true(lines.includes('rik_network_reconciles_total{trigger="resync"} 2'));
});

test("process metrics carry the prefix too, and each registry is its own", async (t) => {
  const text = await createMetrics().registry.metrics();
  t.regex(text, /^rik_network_process_resident_memory_bytes \d+/m);
  t.notRegex(text, /^process_/m);
  const other = createMetrics();
  other.rpcFinished("List", "OK", 0.001);
  t.false((await samples(createMetrics())).some((line) => line.startsWith("rik_network_rpc_calls_total{")));
});
