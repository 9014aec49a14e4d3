/**
 * Figures, targets and the printed table, computed from the raw measurements. Pure: the
 * same figures are printed and written as JSON.
 */
import { churnRate } from "./churn.js";
import type { FirewallBackend } from "./options.js";
import { round, summarize } from "./stats.js";

/** What one firewall backend of the service produced at one size, reduced to numbers (ms unless named otherwise). */
export interface RikMeasurements {
  readonly createMs: readonly number[];
  readonly destroyMs: readonly number[];
  readonly concurrentCreateMs: number;
  readonly concurrentDestroyMs: number;
  readonly restartReadyMs: number;
  readonly reconcileMs: number | undefined;
  readonly recovered: number;
  readonly rssKb: number;
  readonly listMs: readonly number[];
  readonly getMs: readonly number[];
  readonly churn?: {
    readonly elapsedMs: number;
    readonly cycles: number;
    readonly slowestSecond: number | undefined;
    readonly createMs: readonly number[];
    readonly destroyMs: readonly number[];
    readonly failures: number;
    /** Instances List returned after the churn, beyond the fill's. */
    readonly leftInList: number;
    readonly kernelDifferences: number;
    /** Until the kernel came out exact, background work included; undefined when it never did. */
    readonly kernelExactAfterMs: number | undefined;
    /** CPU during the cycles: the service's and the bench's in % of one core, the machine's in % of all. */
    readonly cpu: { readonly servicePercent: number; readonly benchPercent: number; readonly machinePercent: number };
  };
  readonly datapath?: {
    /** Connection times on the reference node (1 exposed instance) and on this size's. */
    readonly aloneMs: readonly number[];
    readonly besideMs: readonly number[];
    /** Exposed instances on this size's node while sampling. */
    readonly exposed: number;
    readonly failures: number;
  };
}

/** What one size produced on each side. */
export interface SizeMeasurements {
  readonly size: number;
  readonly rik: Partial<Record<FirewallBackend, RikMeasurements>>;
  readonly baseline?: {
    readonly createMs: readonly number[];
    readonly destroyMs: readonly number[];
    /** `capped`: stopped at the cap, so `ms` is a lower bound. */
    readonly concurrentCreate: { readonly ms: number; readonly capped: boolean } | undefined;
    readonly concurrentDestroy: { readonly ms: number; readonly capped: boolean } | undefined;
  };
}

export type Unit = "ms" | "MB" | "count" | "per_s" | "ratio" | "percent";

/** A column of the figures: one of the service's firewall backends, or riklet's command sequence. */
export type Side = FirewallBackend | "baseline";

export interface Figure {
  /** Stable key, e.g. "create_p50". */
  readonly key: string;
  readonly label: string;
  readonly size: number;
  readonly unit: Unit;
  /** Per side; null where that side was measured and has no such figure, absent where it was not measured. */
  readonly values: Partial<Record<Side, number | null>>;
  /** baseline / backend: how many times faster than riklet's command sequence each backend is. */
  readonly speedups: Partial<Record<FirewallBackend, number | null>>;
  /** The baseline was stopped at a time cap: its value is a lower bound, and so are the speed-ups. */
  readonly baselineCapped?: true;
}

const finite = (value: number | undefined): number | null => (value === undefined || !Number.isFinite(value) ? null : round(value));

/** What each side gives for one figure; `baseline` is left out when the figure is not the baseline's. */
type FigureSource = (rik: RikMeasurements) => number | undefined;

export interface FigureOptions {
  readonly concurrent: number;
  readonly churnSeconds: number;
  readonly churnInFlight: number;
}

/** The rows of the figures table: one per figure and size, a column per side. */
export function figuresOf(measurements: readonly SizeMeasurements[], firewalls: readonly FirewallBackend[], options: FigureOptions): Figure[] {
  const figures: Figure[] = [];
  for (const { size, rik, baseline } of measurements) {
    const measured = firewalls.filter((firewall) => rik[firewall] !== undefined);
    const row = (key: string, label: string, unit: Unit, source: FigureSource, base?: { value: number | undefined; capped?: boolean }) => {
      const values: Partial<Record<Side, number | null>> = {};
      for (const firewall of measured) values[firewall] = finite(source(rik[firewall]!));
      if (base !== undefined && baseline !== undefined) values.baseline = finite(base.value);
      const speedups: Partial<Record<FirewallBackend, number | null>> = {};
      if (values.baseline !== undefined) {
        for (const firewall of measured) {
          const mine = values[firewall];
          const theirs = values.baseline;
          speedups[firewall] = mine !== null && mine !== undefined && theirs !== null && mine > 0 && theirs > 0 ? round(theirs / mine) : null;
        }
      }
      figures.push({ key, label, size, unit, values, speedups, ...(base?.capped === true && baseline !== undefined ? { baselineCapped: true as const } : {}) });
    };
    const p = (samples: readonly number[] | undefined, which: "p50" | "p99") => (samples === undefined ? undefined : summarize(samples)?.[which]);
    row("create_p50", "create p50", "ms", (r) => p(r.createMs, "p50"), { value: p(baseline?.createMs, "p50") });
    row("create_p99", "create p99", "ms", (r) => p(r.createMs, "p99"), { value: p(baseline?.createMs, "p99") });
    row("destroy_p50", "destroy p50", "ms", (r) => p(r.destroyMs, "p50"), { value: p(baseline?.destroyMs, "p50") });
    row("destroy_p99", "destroy p99", "ms", (r) => p(r.destroyMs, "p99"), { value: p(baseline?.destroyMs, "p99") });
    row("concurrent_create_wall", `${options.concurrent} concurrent creates, wall`, "ms", (r) => r.concurrentCreateMs, {
      value: baseline?.concurrentCreate?.ms,
      capped: baseline?.concurrentCreate?.capped ?? false,
    });
    row("concurrent_destroy_wall", `${options.concurrent} concurrent destroys, wall`, "ms", (r) => r.concurrentDestroyMs, {
      value: baseline?.concurrentDestroy?.ms,
      capped: baseline?.concurrentDestroy?.capped ?? false,
    });
    if (measured.some((firewall) => rik[firewall]!.churn !== undefined)) {
      const churn = `churn (${options.churnInFlight} in flight, ${options.churnSeconds} s)`;
      row("churn_rate", `${churn}: create+destroy cycles per second`, "per_s", (r) => (r.churn === undefined ? undefined : churnRate(r.churn)));
      row("churn_slowest_second", `${churn}: cycles in its slowest second`, "count", (r) => r.churn?.slowestSecond);
      row("churn_create_p50", `${churn}: create p50`, "ms", (r) => p(r.churn?.createMs, "p50"));
      row("churn_create_p99", `${churn}: create p99`, "ms", (r) => p(r.churn?.createMs, "p99"));
      row("churn_destroy_p50", `${churn}: destroy p50`, "ms", (r) => p(r.churn?.destroyMs, "p50"));
      row("churn_destroy_p99", `${churn}: destroy p99`, "ms", (r) => p(r.churn?.destroyMs, "p99"));
      row("churn_service_cpu", `${churn}: service CPU, % of one core`, "percent", (r) => r.churn?.cpu.servicePercent);
      row("churn_bench_cpu", `${churn}: bench client CPU, % of one core`, "percent", (r) => r.churn?.cpu.benchPercent);
      row("churn_machine_cpu", `${churn}: machine CPU busy, % of all cores`, "percent", (r) => r.churn?.cpu.machinePercent);
      row("churn_failures", `${churn}: failed calls`, "count", (r) => r.churn?.failures);
      row("churn_left", `${churn}: instances left in List after`, "count", (r) => r.churn?.leftInList);
      row("churn_kernel_differences", "after the churn: kernel differences from List", "count", (r) => r.churn?.kernelDifferences);
      row("churn_kernel_exact_after", "after the churn: kernel exact after (background work)", "ms", (r) => r.churn?.kernelExactAfterMs);
    }
    const withDatapath = measured.filter((firewall) => rik[firewall]!.datapath !== undefined);
    if (withDatapath.length > 0) {
      const exposed = rik[withDatapath[0]!]!.datapath!.exposed;
      const connection = "data path: connect + request";
      row("datapath_alone_p50", `${connection} p50, reference node (1 exposed)`, "ms", (r) => p(r.datapath?.aloneMs, "p50"));
      row("datapath_alone_p99", `${connection} p99, reference node (1 exposed)`, "ms", (r) => p(r.datapath?.aloneMs, "p99"));
      row("datapath_p50", `${connection} p50, this node (${exposed} exposed)`, "ms", (r) => p(r.datapath?.besideMs, "p50"));
      row("datapath_p99", `${connection} p99, this node (${exposed} exposed)`, "ms", (r) => p(r.datapath?.besideMs, "p99"));
      row("datapath_ratio", "data path: p50 ratio, this node / reference node", "ratio", (r) => datapathRatio(r));
      row("datapath_failures", "data path: failed connections", "count", (r) => r.datapath?.failures);
    }
    row("restart_ready", "restart: spawn to SERVING", "ms", (r) => r.restartReadyMs);
    row("restart_reconcile", "restart: of which reconcile (service log)", "ms", (r) => r.reconcileMs);
    row("restart_recovered", "restart: instances in List after", "count", (r) => r.recovered);
    row("rss", "service RSS (VmRSS)", "MB", (r) => r.rssKb / 1024);
    row("list_p50", "gRPC List round trip p50", "ms", (r) => p(r.listMs, "p50"));
    row("get_p50", "gRPC Get round trip p50", "ms", (r) => p(r.getMs, "p50"));
  }
  return figures;
}

/** p50 with the size's instances over p50 with one, unrounded; undefined without samples. */
function datapathRatio(rik: RikMeasurements): number | undefined {
  const alone = rik.datapath && summarize(rik.datapath.aloneMs)?.p50;
  const beside = rik.datapath && summarize(rik.datapath.besideMs)?.p50;
  return alone === undefined || beside === undefined || alone <= 0 ? undefined : beside / alone;
}

/** One backend's showing on one target. */
export interface TargetResult {
  readonly actual: string;
  /** null: not measured. */
  readonly pass: boolean | null;
}

export interface Target {
  readonly label: string;
  readonly expected: string;
  /** The backend the target judges, and its result. */
  readonly judged: FirewallBackend;
  readonly pass: boolean | null;
  /** Every measured backend's result, the judged one included. */
  readonly results: Partial<Record<FirewallBackend, TargetResult>>;
  /** E.g. that the target's size was not measured and the largest measured size stands in. */
  readonly note?: string;
}

export interface TargetContext {
  readonly figures: readonly Figure[];
  readonly sizes: readonly number[];
  readonly firewalls: readonly FirewallBackend[];
  readonly concurrent: number;
  readonly churnSeconds: number;
  readonly churnInFlight: number;
}

/** Issue 14's size for "with 5,000 instances". */
export const LARGE_SIZE = 5000;
/** The churn the target is about: 8 in flight for 60 s. */
const CHURN_TARGET = { inFlight: 8, seconds: 60, perSecond: 150 };

/**
 * Issue 14's targets, judged on the first of `firewalls` (nft in a default run) with the
 * others' results beside it. Sizes 0 and 5000; when 5000 was not measured, the largest measured
 * size stands in and the note says so.
 */
export function evaluateTargets(context: TargetContext): Target[] {
  const { figures, sizes, firewalls, concurrent } = context;
  const judged = firewalls[0]!;
  const large = sizes.includes(LARGE_SIZE) ? LARGE_SIZE : Math.max(...sizes);
  const standIn = large === LARGE_SIZE ? undefined : `${LARGE_SIZE} not measured: shown at ${large}`;
  const value = (key: string, size: number, firewall: FirewallBackend) =>
    figures.find((f) => f.key === key && f.size === size)?.values[firewall];
  const target = (
    label: string,
    expected: string,
    key: string,
    size: number,
    meets: (value: number) => boolean,
    show: (value: number) => string,
    note?: string,
  ): Target => {
    const results: Partial<Record<FirewallBackend, TargetResult>> = {};
    for (const firewall of firewalls) {
      const measured = value(key, size, firewall);
      results[firewall] = measured === null || measured === undefined ? { actual: "n/a", pass: null } : { actual: show(measured), pass: meets(measured) };
    }
    return { label, expected, judged, pass: results[judged]!.pass, results, ...(note === undefined ? {} : { note }) };
  };
  const atMost = (label: string, key: string, size: number, limit: number, unit: "ms" | "s" | "MB", note?: string) => {
    const scale = unit === "s" ? 1000 : 1;
    return target(label, `<= ${limit} ${unit}`, key, size, (v) => v / scale <= limit, (v) => `${round(v / scale)} ${unit}`, note);
  };
  const targets: Target[] = [];
  const atZero = sizes.includes(0);
  // With 0 the only size, the targets at 5000 would only repeat those at 0, less strictly.
  const atLarge = large !== 0;
  if (atZero) targets.push(atMost("destroy p50 @0", "destroy_p50", 0, 5, "ms"));
  if (atLarge) targets.push(atMost(`destroy p50 @${large}`, "destroy_p50", large, 5, "ms", standIn));
  if (atZero) targets.push(atMost("create p50 @0", "create_p50", 0, 3, "ms"));
  if (atLarge) targets.push(atMost(`create p50 @${large}`, "create_p50", large, 5, "ms", standIn));
  for (const size of sizes) {
    targets.push(atMost(`${concurrent} concurrent creates @${size}`, "concurrent_create_wall", size, 0.25, "s", concurrent === 100 ? undefined : "the target is for 100"));
    targets.push(atMost(`${concurrent} concurrent destroys @${size}`, "concurrent_destroy_wall", size, 0.25, "s", concurrent === 100 ? undefined : "the target is for 100"));
  }
  const churnNote = [
    context.churnSeconds === CHURN_TARGET.seconds ? undefined : `ran ${context.churnSeconds} s, the target is for ${CHURN_TARGET.seconds} s`,
    context.churnInFlight === CHURN_TARGET.inFlight ? undefined : `ran ${context.churnInFlight} in flight, the target is for ${CHURN_TARGET.inFlight}`,
  ]
    .filter((part) => part !== undefined)
    .join("; ");
  for (const size of sizes) {
    const note = churnNote === "" ? undefined : churnNote;
    targets.push(target(`churn cycles per second @${size}`, `>= ${CHURN_TARGET.perSecond}/s`, "churn_rate", size, (v) => v >= CHURN_TARGET.perSecond, (v) => `${round(v)}/s`, note));
    targets.push(target(`churn failed calls @${size}`, "0", "churn_failures", size, (v) => v === 0, (v) => String(v), note));
    targets.push(target(`kernel state exact after the churn @${size}`, "0 differences", "churn_kernel_differences", size, (v) => v === 0, (v) => `${v} differences`, note));
  }
  targets.push(atMost(`restart to SERVING @${large}`, "restart_ready", large, 1, "s", standIn));
  targets.push(
    target(
      `data path p50 @${large} vs 1 exposed`,
      "within 10%",
      "datapath_ratio",
      large,
      (v) => Math.abs(v - 1) <= 0.1,
      (v) => `${v >= 1 ? "+" : ""}${round((v - 1) * 100)}%`,
      standIn,
    ),
  );
  targets.push(atMost(`service RSS @${large}`, "rss", large, 150, "MB", standIn));
  return targets;
}

function formatValue(value: number | null | undefined, unit: Unit): string {
  if (value === null || value === undefined) return "-";
  switch (unit) {
    case "count":
      return String(Math.round(value));
    case "ratio":
      return value.toFixed(3);
    case "per_s":
      return `${value}/s`;
    case "percent":
      return `${value}%`;
    default:
      return `${value} ${unit}`;
  }
}

/** Left-aligns the first column and right-aligns the others. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** Riklet's command sequence, as the figures table names it. */
const BASELINE_COLUMN = "riklet";

export function renderFigures(figures: readonly Figure[], firewalls: readonly FirewallBackend[]): string {
  const withBaseline = figures.some((f) => f.values.baseline !== undefined);
  const rows = figures.map((f) => {
    const capped = f.baselineCapped === true;
    return [
      f.label,
      String(f.size),
      ...firewalls.map((firewall) => formatValue(f.values[firewall], f.unit)),
      ...(withBaseline
        ? [
            f.values.baseline === undefined ? "" : `${capped ? ">" : ""}${formatValue(f.values.baseline, f.unit)}`,
            ...firewalls.map((firewall) => {
              const speedup = f.speedups[firewall];
              return speedup === null || speedup === undefined ? "" : `${capped ? ">" : ""}${speedup}x`;
            }),
          ]
        : []),
    ];
  });
  const header = [
    "figure",
    "instances",
    ...firewalls,
    ...(withBaseline ? [BASELINE_COLUMN, ...firewalls.map((firewall) => `${firewall} speed-up`)] : []),
  ];
  return renderTable(header, rows);
}

/** The judged backend's value and result, then every other backend's value with whether it would meet the target. */
export function renderTargets(targets: readonly Target[]): string {
  const judged = targets[0]?.judged;
  const others = judged === undefined ? [] : (Object.keys(targets[0]!.results) as FirewallBackend[]).filter((firewall) => firewall !== judged);
  const verdict = (pass: boolean | null) => (pass === null ? "n/a" : pass ? "pass" : "FAIL");
  const rows = targets.map((t) => [
    t.label,
    t.expected,
    t.results[t.judged]?.actual ?? "n/a",
    verdict(t.pass),
    ...others.map((firewall) => {
      const result = t.results[firewall];
      if (result === undefined || result.pass === null) return result?.actual ?? "n/a";
      return `${result.actual} (${result.pass ? "meets" : "misses"})`;
    }),
    t.note ?? "",
  ]);
  return renderTable(["target", "expected", judged ?? "actual", "result", ...others, "note"], rows);
}

/** Per step: p50 and p99 at each profiled size. */
export interface ProfileRow {
  readonly step: string;
  readonly bySize: Readonly<Record<number, { p50: number; p99: number } | undefined>>;
}

export function profileRows(profiles: readonly { size: number; steps: Record<string, number[]> }[]): ProfileRow[] {
  const names = [...new Set(profiles.flatMap((p) => Object.keys(p.steps)))];
  return names.map((step) => ({
    step,
    bySize: Object.fromEntries(
      profiles.map((p) => {
        const summary = summarize(p.steps[step] ?? []);
        return [p.size, summary === undefined ? undefined : { p50: round(summary.p50), p99: round(summary.p99) }];
      }),
    ),
  }));
}

/** Sum of the p50s of the steps whose name starts with `prefix` ("create:" or "destroy:"). */
export function sumOfSteps(rows: readonly ProfileRow[], prefix: string, size: number): number {
  return round(rows.filter((r) => r.step.startsWith(prefix)).reduce((sum, r) => sum + (r.bySize[size]?.p50 ?? 0), 0));
}

/** Which part of an operation a profiled step belongs to: its rules, its TAP, or its durable record. */
function stepGroup(step: string): "rules" | "tap" | "state" {
  if (step.includes("iptables") || /\bnft\b/.test(step)) return "rules";
  if (step.includes("state record")) return "state";
  return "tap";
}

/**
 * The operation's critical path when the TAP steps and the rules step run at the same time
 * (as the service does): state record + max(TAP steps, rules step), from the p50s.
 */
export function overlappedSteps(rows: readonly ProfileRow[], prefix: string, size: number): number {
  const sums = { rules: 0, tap: 0, state: 0 };
  for (const row of rows) if (row.step.startsWith(prefix)) sums[stepGroup(row.step)] += row.bySize[size]?.p50 ?? 0;
  return round(sums.state + Math.max(sums.tap, sums.rules));
}

/** The profile of one backend, set against that backend's end-to-end figures. */
export function renderProfile(rows: readonly ProfileRow[], sizes: readonly number[], endToEnd: readonly Figure[], firewall: FirewallBackend): string {
  const header = ["step (ms)", ...sizes.flatMap((s) => [`p50 @${s}`, `p99 @${s}`])];
  const cells = (values: (number | undefined)[]) => values.map((v) => (v === undefined ? "-" : String(round(v))));
  const perSize = (value: (size: number) => number | undefined) => cells(sizes.flatMap((s) => [value(s), undefined]));
  const body = rows.map((r) => [r.step, ...cells(sizes.flatMap((s) => [r.bySize[s]?.p50, r.bySize[s]?.p99]))]);
  const e2e = (key: string, size: number) => endToEnd.find((f) => f.key === key && f.size === size)?.values[firewall] ?? undefined;
  for (const [prefix, key] of [
    ["create:", "create_p50"],
    ["destroy:", "destroy_p50"],
  ] as const) {
    const name = prefix.slice(0, -1);
    body.push([`= ${name}: steps one after the other, sum of p50`, ...perSize((s) => sumOfSteps(rows, prefix, s))]);
    body.push([`= ${name}: TAP and rules overlapped, state + max(TAP, rules)`, ...perSize((s) => overlappedSteps(rows, prefix, s))]);
    body.push([`  ${name}: end to end over gRPC, p50`, ...perSize((s) => e2e(key, s))]);
    body.push([
      `  ${name}: rest (end to end - overlapped): gRPC, service bookkeeping, scheduling`,
      ...perSize((s) => {
        const total = e2e(key, s);
        return total === undefined ? undefined : total - overlappedSteps(rows, prefix, s);
      }),
    ]);
  }
  return renderTable(header, body);
}
