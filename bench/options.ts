/** Command-line options of `npm run bench`. Pure: argv in, options (or an error) out. */
import { parseArgs } from "node:util";
import { MAX_CHURN_IN_FLIGHT, poolCapacity } from "./instances.js";

/** The iptables binaries: iptables-nft (`iptables`, `iptables-restore`) or `iptables-legacy*`. */
export type IptablesBackend = "nft" | "legacy";

/** The service's firewall backend (its `--firewall-backend`): native nftables, or iptables. */
export type FirewallBackend = "nft" | "iptables";

export const FIREWALL_BACKENDS: readonly FirewallBackend[] = ["nft", "iptables"];

export interface BenchOptions {
  /** Instances already present when latency is measured, e.g. [0, 1000, 5000]. */
  readonly sizes: readonly number[];
  /** Sequential create+destroy pairs measured per size. */
  readonly samples: number;
  /** Pairs run (and thrown away) before the samples, per size. */
  readonly warmup: number;
  /** Instances created (then destroyed) at once for the wall-time figures. */
  readonly concurrent: number;
  /** In-flight creates while filling the node to a size (not measured). */
  readonly fillConcurrency: number;
  /** Repetitions of each step in the profile. */
  readonly profileSamples: number;
  /**
   * The service's firewall backends to measure, each in its own namespaces at every size. The
   * first is the one the targets judge; the others are printed beside it.
   */
  readonly firewalls: readonly FirewallBackend[];
  /** iptables binaries of the baseline, and of the service's iptables backend (its `--iptables-backend`). */
  readonly iptablesBackend: IptablesBackend;
  /** Length of the churn (CREATE+DESTROY cycles back to back) at each size, in s; 0 leaves it out. */
  readonly churnSeconds: number;
  /** Cycles in flight during the churn. */
  readonly churnInFlight: number;
  /** Connections timed through the DNAT on each side (1 exposed instance, and the size's), interleaved; 0 leaves the data path out. */
  readonly datapathSamples: number;
  /** `--pool` of the service under test, and the baseline's address layout. */
  readonly pool: string;
  /** Where the JSON results go. */
  readonly out: string;
  /** Longest the baseline's concurrent batch may run before it is stopped and reported as "> cap". */
  readonly baselineCapSeconds: number;
  /** Longest wait, before each phase, for the CPUs to be quiet (85% idle over 0.5 s). */
  readonly settleMaxSeconds: number;
  /** Hard limit on the whole run; past it the run cleans up and exits 1. */
  readonly maxMinutes: number;
  readonly skipBaseline: boolean;
  readonly skipProfile: boolean;
  readonly quick: boolean;
  readonly help: boolean;
}

export const usage = `Usage: npm run bench -- [options]

Benchmarks rik-network (the real service, over gRPC) against a replay of riklet's command
sequence, each in throwaway network namespaces. Needs root; never touches the root namespace.

Two different choices, not to be confused:
  --firewall LIST         the service's firewall backends to measure, each on its own, at
                          every size: nft (native nftables, one table inet rik-network) and/or
                          iptables; passed to the service as --firewall-backend (default
                          nft,iptables; the first is the one judged against the targets)
  --iptables-backend nft|legacy
                          which iptables binaries: nft (iptables, iptables-restore: iptables-nft)
                          or legacy (iptables-legacy*); used by the baseline, and passed to the
                          service's iptables backend as --iptables-backend (default nft)

Options:
  --quick                 shorter run: sizes 0,500, 30 samples, 10 s of churn, 300 data-path
                          samples
  --sizes LIST            instances present while measuring (default 0,1000,5000)
  --samples N             sequential create+destroy pairs per size (default 100)
  --warmup N              unmeasured pairs before the samples, so that the service's code is
                          compiled and measured in its steady state (default 30)
  --concurrent N          creates (then destroys) issued at once (default 100)
  --fill-concurrency N    in-flight creates while filling a node (default 24)
  --churn-seconds N       length of the churn at each size: CREATE+DESTROY cycles back to
                          back, then the kernel state checked against List (default 60; 0: none)
  --churn-in-flight N     cycles in flight during the churn (default 8)
  --datapath-samples N    connections (TCP connect + one request and its answer) timed from a
                          world namespace through the DNAT to a guest, on a node with 1 exposed
                          instance and on the size's node, interleaved (default 2000; 0: none)
  --profile-samples N     repetitions of each profiled step (default 30)
  --pool CIDR             address pool of the service (default 10.220.0.0/16)
  --out PATH              JSON results (default bench-results.json)
  --baseline-cap-seconds N
                          stop the baseline's concurrent batch after N s and report it as
                          "> N s" (default 300)
  --settle-max-seconds N  before each phase, wait up to N s for the CPUs to be 85% idle
                          (default 30; the wait is reported when it times out)
  --max-minutes N         stop, print what was measured, clean up and exit 1
                          past this (default 90)
  --skip-baseline         measure rik-network only (no riklet command sequence)
  --skip-profile          leave out the per-step profile
  --help, -h              print this help
`;

export class OptionsError extends Error {
  override readonly name = "OptionsError";
}

function integer(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) throw new OptionsError(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  return value;
}

/** `nft,iptables` in the order given: the first is the one judged. */
function parseFirewalls(list: string): FirewallBackend[] {
  const names = list.split(",").map((name) => name.trim());
  for (const name of names) {
    if (!(FIREWALL_BACKENDS as readonly string[]).includes(name)) {
      throw new OptionsError(`--firewall takes a comma-separated list of ${FIREWALL_BACKENDS.join(", ")}, got "${name}"`);
    }
  }
  if (new Set(names).size !== names.length) throw new OptionsError(`--firewall names a backend twice: ${list}`);
  return names as FirewallBackend[];
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        quick: { type: "boolean" },
        backend: { type: "string" },
        firewall: { type: "string" },
        "iptables-backend": { type: "string" },
        "churn-seconds": { type: "string" },
        "churn-in-flight": { type: "string" },
        "datapath-samples": { type: "string" },
        sizes: { type: "string" },
        samples: { type: "string" },
        warmup: { type: "string" },
        concurrent: { type: "string" },
        "fill-concurrency": { type: "string" },
        "profile-samples": { type: "string" },
        pool: { type: "string" },
        out: { type: "string" },
        "max-minutes": { type: "string" },
        "settle-max-seconds": { type: "string" },
        "baseline-cap-seconds": { type: "string" },
        "skip-baseline": { type: "boolean" },
        "skip-profile": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new OptionsError((error as Error).message);
  }
  const text = (name: string) => values[name] as string | undefined;
  const quick = values.quick === true;

  if (text("backend") !== undefined) {
    throw new OptionsError(
      "--backend is gone, it was two things: --firewall nft,iptables chooses the service's firewall backends, --iptables-backend nft|legacy the iptables binaries",
    );
  }
  const iptablesBackend = text("iptables-backend") ?? "nft";
  if (iptablesBackend !== "nft" && iptablesBackend !== "legacy") {
    throw new OptionsError(`--iptables-backend must be nft or legacy, got "${iptablesBackend}"`);
  }
  const firewalls = parseFirewalls(text("firewall") ?? FIREWALL_BACKENDS.join(","));

  const sizesText = text("sizes") ?? (quick ? "0,500" : "0,1000,5000");
  const sizes = sizesText.split(",").map((part) => integer("sizes", part.trim(), 0, 0, 50_000));
  if (new Set(sizes).size !== sizes.length) throw new OptionsError(`--sizes has a repeated size: ${sizesText}`);
  sizes.sort((a, b) => a - b);

  const samples = integer("samples", text("samples"), quick ? 30 : 100, 1, 5000);
  const warmup = integer("warmup", text("warmup"), 30, 0, 1000);
  const concurrent = integer("concurrent", text("concurrent"), 100, 1, 2000);
  const pool = text("pool") ?? "10.220.0.0/16";
  let capacity: number;
  try {
    capacity = poolCapacity(pool);
  } catch (error) {
    throw new OptionsError(`--pool: ${(error as Error).message}`);
  }
  const churnInFlight = integer("churn-in-flight", text("churn-in-flight"), 8, 1, MAX_CHURN_IN_FLIGHT);
  const needed = Math.max(...sizes) + Math.max(1, concurrent, churnInFlight);
  if (capacity < needed) throw new OptionsError(`--pool ${pool} holds ${capacity} instances; the run needs ${needed}`);

  return {
    sizes,
    samples,
    warmup,
    concurrent,
    fillConcurrency: integer("fill-concurrency", text("fill-concurrency"), 24, 1, 256),
    profileSamples: integer("profile-samples", text("profile-samples"), quick ? 15 : 30, 1, 1000),
    firewalls,
    iptablesBackend,
    churnSeconds: integer("churn-seconds", text("churn-seconds"), quick ? 10 : 60, 0, 3600),
    churnInFlight,
    datapathSamples: integer("datapath-samples", text("datapath-samples"), quick ? 300 : 2000, 0, 100_000),
    pool,
    out: text("out") ?? "bench-results.json",
    baselineCapSeconds: integer("baseline-cap-seconds", text("baseline-cap-seconds"), 300, 1, 24 * 3600),
    settleMaxSeconds: integer("settle-max-seconds", text("settle-max-seconds"), 30, 0, 3600),
    maxMinutes: integer("max-minutes", text("max-minutes"), 90, 1, 24 * 60),
    skipBaseline: values["skip-baseline"] === true,
    skipProfile: values["skip-profile"] === true,
    quick,
    help: values.help === true,
  };
}

/**
 * The service's flags for one firewall backend: `--firewall-backend`, and for iptables the
 * binaries. A service without `--firewall-backend` (older than the nft backend) has iptables
 * only, and rejects unknown flags: it is given none of it.
 */
export function serviceArgsFor(firewall: FirewallBackend, iptablesBackend: IptablesBackend, hasFirewallFlag: boolean): string[] {
  if (!hasFirewallFlag) {
    if (firewall === "nft") throw new OptionsError("this service has no --firewall-backend flag, so no nft backend: measure it with --firewall iptables");
    return ["--iptables-backend", iptablesBackend];
  }
  return firewall === "nft" ? ["--firewall-backend", "nft"] : ["--firewall-backend", "iptables", "--iptables-backend", iptablesBackend];
}
