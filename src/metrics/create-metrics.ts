import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { InstanceNetwork, InstanceStatus, NetworkObserver, PlaneStats } from "../network/index.js";

/** What the scrape-time gauges read from the network plane. */
export interface PlaneView {
  list(): readonly InstanceNetwork[];
  stats(): PlaneStats;
}

/**
 * The service's Prometheus metrics. It is the network plane's observer (iptables and
 * reconcile hooks) and the server's RPC observer, and reads instance counts and pool
 * use from the plane at scrape time.
 */
export interface Metrics extends NetworkObserver {
  readonly registry: Registry;
  iptablesRestore(durationSeconds: number, ok: boolean): void;
  nftTransaction(durationSeconds: number, ok: boolean): void;
  reconciled(trigger: "start" | "resync", actions: Readonly<Record<string, number>>): void;
  /** One call of rik.network.v1.WorkloadNetwork ended. */
  rpcFinished(method: string, code: string, durationSeconds: number): void;
  /** From now on, scrapes report the plane's instances and pool (before that: none, and a pool of 0). */
  observePlane(plane: PlaneView): void;
}

const prefix = "rik_network_";

const statuses: readonly InstanceStatus[] = ["creating", "running", "destroying", "terminated", "failed"];

const rpcBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const iptablesBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A fresh registry (never prom-client's global one) with every rik_network_ metric. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix });
  let plane: PlaneView | undefined;
  /** Kinds seen once keep a series per status, at 0 when empty, so that series do not vanish. */
  const kindsSeen = new Set<string>();

  const rpcCalls = new Counter({
    name: `${prefix}rpc_calls_total`,
    help: "Calls of rik.network.v1.WorkloadNetwork, by method and gRPC status code.",
    labelNames: ["method", "code"] as const,
    registers: [registry],
  });
  const rpcDuration = new Histogram({
    name: `${prefix}rpc_duration_seconds`,
    help: "Time from a call's arrival to its status, by method and gRPC status code (for Watch: the stream's life).",
    labelNames: ["method", "code"] as const,
    buckets: rpcBuckets,
    registers: [registry],
  });
  new Gauge({
    name: `${prefix}instances`,
    help: "Instances on the node, by workload kind and network status.",
    labelNames: ["kind", "status"] as const,
    registers: [registry],
    collect() {
      this.reset();
      const instances = plane?.list() ?? [];
      for (const { kind } of instances) if (kind !== "") kindsSeen.add(kind);
      for (const kind of kindsSeen) for (const status of statuses) this.set({ kind, status }, 0);
      for (const { kind, status } of instances) if (kind !== "") this.inc({ kind, status });
    },
  });
  const poolGauges: [string, string, "poolSize" | "poolUsed"][] = [
    ["pool_size", "Capacity of the address pool, in /30 subnets (one per instance).", "poolSize"],
    ["pool_used", "/30 subnets of the address pool held by instances.", "poolUsed"],
  ];
  for (const [name, help, stat] of poolGauges) {
    new Gauge({
      name: `${prefix}${name}`,
      help,
      registers: [registry],
      collect() {
        this.set(plane?.stats()[stat] ?? 0);
      },
    });
  }
  new Gauge({
    name: `${prefix}strategy_stat`,
    help: "Each workload kind's own figures, by kind and name (Function: spare_taps, the spare TAPs ready to be taken), read at scrape time.",
    labelNames: ["kind", "stat"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, stats] of Object.entries(plane?.stats().strategies ?? {})) {
        for (const [stat, value] of Object.entries(stats)) this.set({ kind, stat }, value);
      }
    },
  });
  const restoreDuration = new Histogram({
    name: `${prefix}iptables_restore_duration_seconds`,
    help: "Duration of each iptables-restore batch, retries on the xtables lock included, whether it succeeded or not.",
    buckets: iptablesBuckets,
    registers: [registry],
  });
  const restoreFailures = new Counter({
    name: `${prefix}iptables_restore_failures_total`,
    help: "iptables-restore batches the kernel (or the lock) refused.",
    registers: [registry],
  });
  const nftDuration = new Histogram({
    name: `${prefix}nft_transaction_duration_seconds`,
    help: "Duration of each nftables transaction of the nft backend, whether it succeeded or not.",
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    registers: [registry],
  });
  const nftFailures = new Counter({
    name: `${prefix}nft_transaction_failures_total`,
    help: "nftables transactions of the nft backend that the kernel (or nft's parser) refused.",
    registers: [registry],
  });
  const reconciles = new Counter({
    name: `${prefix}reconciles_total`,
    help: "Reconciles of the kernel with the stored instances, by trigger (start, resync).",
    labelNames: ["trigger"] as const,
    registers: [registry],
  });
  const reconcileActions = new Counter({
    name: `${prefix}reconcile_actions_total`,
    help: "Repairs made by reconciles, by trigger and action; with trigger=resync, the drift repaired while running.",
    labelNames: ["trigger", "action"] as const,
    registers: [registry],
  });

  return {
    registry,
    rpcFinished(method, code, durationSeconds) {
      rpcCalls.inc({ method, code });
      rpcDuration.observe({ method, code }, durationSeconds);
    },
    iptablesRestore(durationSeconds, ok) {
      restoreDuration.observe(durationSeconds);
      if (!ok) restoreFailures.inc();
    },
    nftTransaction(durationSeconds, ok) {
      nftDuration.observe(durationSeconds);
      if (!ok) nftFailures.inc();
    },
    reconciled(trigger, actions) {
      reconciles.inc({ trigger });
      for (const [action, count] of Object.entries(actions)) {
        if (count > 0) reconcileActions.inc({ trigger, action }, count);
      }
    },
    observePlane(view) {
      plane = view;
    },
  };
}
