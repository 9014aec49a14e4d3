/**
 * The Prometheus endpoint of the real service, scraped from inside its node namespace (it
 * binds to that namespace's loopback), following what operations do to the node.
 */
import test from "ava";
import { TEST_FIREWALL_BACKEND } from "./helpers/firewall-backend.js";
import { firewallState, NO_FIREWALL } from "./helpers/kernel-state.js";
import { scrapeMetrics, httpGetIn } from "./helpers/metrics-scrape.js";
import { Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { failureOf, functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

const applyOk = 'rik_network_rpc_calls_total{code="OK",method="Apply"}';
const running = 'rik_network_instances{kind="Function",status="running"}';
/** The firewall's batches, per backend: iptables-restore runs, or nftables transactions. */
const batch =
  TEST_FIREWALL_BACKEND === "nft"
    ? { what: "nftables transaction", duration: "rik_network_nft_transaction_duration_seconds", failures: "rik_network_nft_transaction_failures_total" }
    : { what: "iptables-restore", duration: "rik_network_iptables_restore_duration_seconds", failures: "rik_network_iptables_restore_failures_total" };
const restores = `${batch.duration}_count`;

test(`the metrics follow the operations: RPC counts and latencies, instances, pool use, ${batch.what} runs`, async (t) => {
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node, pool: "10.220.0.0/24" });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());

  const before = await scrapeMetrics(topology.node);
  t.is(before.get("rik_network_pool_size"), 64, "a /24 holds 64 /30s");
  t.is(before.get("rik_network_pool_used"), 0);
  t.is(before.get(applyOk), undefined);
  t.is(before.get('rik_network_reconciles_total{trigger="start"}'), 1);
  t.is(before.get(batch.failures), 0);
  const restoresAtStart = before.get(restores) ?? 0;

  await client.create("fn-m1", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));
  await client.create("fn-m2", functionDefinition({ name: "other" }));
  const created = await scrapeMetrics(topology.node);
  t.is(created.get(applyOk), 2);
  t.is(created.get('rik_network_rpc_duration_seconds_count{code="OK",method="Apply"}'), 2);
  t.is(created.get('rik_network_rpc_duration_seconds_bucket{code="OK",le="+Inf",method="Apply"}'), 2);
  t.is(created.get(running), 2);
  t.is(created.get('rik_network_instances{kind="Function",status="failed"}'), 0);
  t.is(created.get("rik_network_pool_used"), 2);
  // fn-m2 exposes nothing: it has no DNAT, so its CREATE runs no batch.
  t.is(created.get(restores), restoresAtStart + 1, `the exposed CREATE ran one ${batch.what}`);
  t.true((created.get(`${batch.duration}_sum`) ?? 0) > 0);

  t.is((await failureOf(client.get("nope"))).code, 5);
  await client.destroy("fn-m1");
  const after = await scrapeMetrics(topology.node);
  t.is(after.get('rik_network_rpc_calls_total{code="NOT_FOUND",method="Get"}'), 1);
  t.is(after.get(applyOk), 3);
  t.is(after.get(running), 1);
  t.is(after.get("rik_network_pool_used"), 1);
  t.true((after.get(restores) ?? 0) > (created.get(restores) ?? 0), `DESTROY ran ${batch.what}`);
  t.is(after.get(batch.failures), 0);
  t.true((after.get("rik_network_process_resident_memory_bytes") ?? 0) > 0, "process metrics, prefixed");
});

test("--metrics-listen moves the endpoint, off removes it, and only /metrics is served", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const moved = await startService({ nodeNs: topology.node, extraArgs: ["--metrics-listen", "127.0.0.1:9500"] });
  t.teardown(() => moved.stop());
  t.is((await scrapeMetrics(topology.node, "http://127.0.0.1:9500/metrics")).get("rik_network_pool_used"), 0);
  t.deepEqual(await httpGetIn(topology.node, "http://127.0.0.1:9464/metrics"), { error: "ECONNREFUSED" });
  t.like(await httpGetIn(topology.node, "http://127.0.0.1:9500/"), { status: 404 });
  t.like(
    await moved.waitForLog((entry) => entry.message === "ready"),
    { metrics_url: "http://127.0.0.1:9500/metrics" },
  );
  await moved.stop();

  const off = await startService({ nodeNs: topology.node, socketPath: moved.socketPath, extraArgs: ["--metrics-listen", "off"] });
  t.teardown(() => off.stop());
  t.deepEqual(await httpGetIn(topology.node, "http://127.0.0.1:9500/metrics"), { error: "ECONNREFUSED" });
  t.deepEqual(await httpGetIn(topology.node, "http://127.0.0.1:9464/metrics"), { error: "ECONNREFUSED" });
});

test("a metrics address that cannot be bound stops the service before it touches the kernel", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const error = await t.throwsAsync(startService({ nodeNs: topology.node, extraArgs: ["--metrics-listen", "192.0.2.1:9464"] }));
  t.regex(error?.message ?? "", /cannot serve metrics on 192\.0\.2\.1:9464: .*EADDRNOTAVAIL.*; pass another --metrics-listen, or off/);
  t.deepEqual(await firewallState(topology.node), NO_FIREWALL, "no chain, table or rule was created");
});
