/** Command-line options of `npm run bench`. Pure: argv in, options (or an error) out. */
import { parseArgs } from "node:util";
import { poolCapacity } from "./instances.js";

export type Backend = "nft" | "legacy";

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
  readonly backend: Backend;
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

Options:
  --quick                 shorter run: sizes 0,500, 30 samples
  --backend nft|legacy    iptables backend (default nft: iptables/iptables-restore; legacy:
                          iptables-legacy*; passed to rik-network as --iptables-backend)
  --sizes LIST            instances present while measuring (default 0,1000,5000)
  --samples N             sequential create+destroy pairs per size (default 100)
  --warmup N              unmeasured pairs before the samples, so that the service's code is
                          compiled and measured in its steady state (default 30)
  --concurrent N          creates (then destroys) issued at once (default 100)
  --fill-concurrency N    in-flight creates while filling a node (default 24)
  --profile-samples N     repetitions of each profiled step (default 30)
  --pool CIDR             address pool of the service (default 10.220.0.0/16)
  --out PATH              JSON results (default bench-results.json)
  --baseline-cap-seconds N
                          stop the baseline's concurrent batch after N s and report it as
                          "> N s" (default 600)
  --settle-max-seconds N  before each phase, wait up to N s for the CPUs to be 85% idle
                          (default 30; the wait is reported when it times out)
  --max-minutes N         stop, print what was measured, clean up and exit 1
                          past this (default 90)
  --skip-baseline         measure rik-network only
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

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        quick: { type: "boolean" },
        backend: { type: "string" },
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

  const backend = text("backend") ?? "nft";
  if (backend !== "nft" && backend !== "legacy") throw new OptionsError(`--backend must be nft or legacy, got "${backend}"`);

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
  const needed = Math.max(...sizes) + Math.max(1, concurrent);
  if (capacity < needed) throw new OptionsError(`--pool ${pool} holds ${capacity} instances; the run needs ${needed}`);

  return {
    sizes,
    samples,
    warmup,
    concurrent,
    fillConcurrency: integer("fill-concurrency", text("fill-concurrency"), 24, 1, 256),
    profileSamples: integer("profile-samples", text("profile-samples"), quick ? 15 : 30, 1, 1000),
    backend,
    pool,
    out: text("out") ?? "bench-results.json",
    baselineCapSeconds: integer("baseline-cap-seconds", text("baseline-cap-seconds"), 600, 1, 24 * 3600),
    settleMaxSeconds: integer("settle-max-seconds", text("settle-max-seconds"), 30, 0, 3600),
    maxMinutes: integer("max-minutes", text("max-minutes"), 90, 1, 24 * 60),
    skipBaseline: values["skip-baseline"] === true,
    skipProfile: values["skip-profile"] === true,
    quick,
    help: values.help === true,
  };
}
