/**
 * Figures, targets and the printed table, computed from the raw measurements. Pure: the
 * same figures are printed and written as JSON.
 */
import { round, summarize } from "./stats.js";

/** What one size produced on each side, reduced to numbers (ms unless named otherwise). */
export interface SizeMeasurements {
  readonly size: number;
  readonly rik?: {
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
  };
  readonly baseline?: {
    readonly createMs: readonly number[];
    readonly destroyMs: readonly number[];
    /** `capped`: stopped at the cap, so `ms` is a lower bound. */
    readonly concurrentCreate: { readonly ms: number; readonly capped: boolean } | undefined;
    readonly concurrentDestroy: { readonly ms: number; readonly capped: boolean } | undefined;
  };
}

export type Unit = "ms" | "MB" | "count";

export interface Figure {
  /** Stable key, e.g. "create_p50". */
  readonly key: string;
  readonly label: string;
  readonly size: number;
  readonly unit: Unit;
  readonly rik: number | null;
  readonly baseline: number | null;
  /** rik / baseline: below 1 means rik-network takes less. */
  readonly ratio: number | null;
  /** baseline / rik: how many times faster rik-network is. */
  readonly speedup: number | null;
  /** The baseline was stopped at a time cap: its value is a lower bound, the ratio an upper one, the speed-up a lower one. */
  readonly baselineCapped?: true;
}

function figure(
  key: string,
  label: string,
  size: number,
  unit: Unit,
  rik: number | undefined,
  baseline: number | undefined,
  baselineCapped = false,
): Figure {
  const both = rik !== undefined && baseline !== undefined && Number.isFinite(rik) && Number.isFinite(baseline) && rik > 0 && baseline > 0;
  return {
    key,
    label,
    size,
    unit,
    rik: rik === undefined || !Number.isFinite(rik) ? null : round(rik),
    baseline: baseline === undefined || !Number.isFinite(baseline) ? null : round(baseline),
    ratio: both ? round(rik / baseline) : null,
    speedup: both ? round(baseline / rik) : null,
    ...(baselineCapped && baseline !== undefined ? { baselineCapped: true as const } : {}),
  };
}

export function figuresOf(measurements: readonly SizeMeasurements[], concurrent: number): Figure[] {
  const figures: Figure[] = [];
  for (const { size, rik, baseline } of measurements) {
    const rikCreate = rik && summarize(rik.createMs);
    const rikDestroy = rik && summarize(rik.destroyMs);
    const baseCreate = baseline && summarize(baseline.createMs);
    const baseDestroy = baseline && summarize(baseline.destroyMs);
    figures.push(
      figure("create_p50", "create p50", size, "ms", rikCreate?.p50, baseCreate?.p50),
      figure("create_p99", "create p99", size, "ms", rikCreate?.p99, baseCreate?.p99),
      figure("destroy_p50", "destroy p50", size, "ms", rikDestroy?.p50, baseDestroy?.p50),
      figure("destroy_p99", "destroy p99", size, "ms", rikDestroy?.p99, baseDestroy?.p99),
      figure(
        "concurrent_create_wall",
        `${concurrent} concurrent creates, wall`,
        size,
        "ms",
        rik?.concurrentCreateMs,
        baseline?.concurrentCreate?.ms,
        baseline?.concurrentCreate?.capped,
      ),
      figure(
        "concurrent_destroy_wall",
        `${concurrent} concurrent destroys, wall`,
        size,
        "ms",
        rik?.concurrentDestroyMs,
        baseline?.concurrentDestroy?.ms,
        baseline?.concurrentDestroy?.capped,
      ),
    );
    if (rik !== undefined) {
      figures.push(
        figure("restart_ready", "restart: spawn to SERVING", size, "ms", rik.restartReadyMs, undefined),
        figure("restart_reconcile", "restart: of which reconcile (service log)", size, "ms", rik.reconcileMs, undefined),
        figure("restart_recovered", "restart: instances in List after", size, "count", rik.recovered, undefined),
        figure("rss", "service RSS (VmRSS)", size, "MB", rik.rssKb / 1024, undefined),
        figure("list_p50", "gRPC List round trip p50", size, "ms", summarize(rik.listMs)?.p50, undefined),
        figure("get_p50", "gRPC Get round trip p50", size, "ms", summarize(rik.getMs)?.p50, undefined),
      );
    }
  }
  return figures;
}

export interface Target {
  readonly label: string;
  readonly expected: string;
  readonly actual: string;
  /** null: not measured in this run. */
  readonly pass: boolean | null;
  /** Set when the target's size was not measured and the largest measured size stands in. */
  readonly note?: string;
}

export interface TargetContext {
  readonly figures: readonly Figure[];
  readonly sizes: readonly number[];
  readonly concurrent: number;
  readonly defaultPoolCapacity: number;
}

/** The targets: sizes 0 and 5000 (the largest measured size stands in for 5000 when absent). */
export function evaluateTargets({ figures, sizes, concurrent, defaultPoolCapacity }: TargetContext): Target[] {
  const large = sizes.includes(5000) ? 5000 : Math.max(...sizes);
  const standIn = large === 5000 ? undefined : `5000 not measured: shown at ${large}`;
  const find = (key: string, size: number) => figures.find((f) => f.key === key && f.size === size);
  const atMost = (label: string, key: string, size: number, limit: number, unit: string, scale = 1, note?: string): Target => {
    const value = find(key, size)?.rik;
    return {
      label,
      expected: `<= ${limit} ${unit}`,
      actual: value === null || value === undefined ? "n/a" : `${round(value / scale)} ${unit}`,
      pass: value === null || value === undefined ? null : value / scale <= limit,
      ...(note === undefined ? {} : { note }),
    };
  };
  const speedup = (size: number, limit: number, note?: string): Target => {
    const value = find("create_p50", size)?.speedup;
    return {
      label: `create p50 speed-up vs baseline @${size}`,
      expected: `>= ${limit}x`,
      actual: value === null || value === undefined ? "n/a" : `${value}x`,
      pass: value === null || value === undefined ? null : value >= limit,
      ...(note === undefined ? {} : { note }),
    };
  };
  const targets: Target[] = [];
  if (sizes.includes(0)) {
    targets.push(atMost("create p50 @0", "create_p50", 0, 5, "ms"));
  }
  targets.push(atMost(`create p50 @${large}`, "create_p50", large, 10, "ms", 1, standIn));
  if (sizes.includes(0)) targets.push(speedup(0, 6));
  targets.push(speedup(large, 15, standIn));
  for (const size of sizes) {
    targets.push(atMost(`${concurrent} concurrent creates @${size}`, "concurrent_create_wall", size, 0.5, "s", 1000));
    targets.push(atMost(`${concurrent} concurrent destroys @${size}`, "concurrent_destroy_wall", size, 0.5, "s", 1000));
  }
  targets.push(atMost(`restart + reconcile @${large}`, "restart_ready", large, 2, "s", 1000, standIn));
  targets.push(atMost(`service RSS @${large}`, "rss", large, 150, "MB", 1, standIn));
  targets.push({
    label: "default pool capacity",
    expected: ">= 5000 instances",
    actual: `${defaultPoolCapacity} instances`,
    pass: defaultPoolCapacity >= 5000,
  });
  return targets;
}

function formatValue(value: number | null, unit: Unit): string {
  if (value === null) return "-";
  if (unit === "count") return String(Math.round(value));
  return `${value} ${unit}`;
}

/** Left-aligns the first column and right-aligns the others. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function renderFigures(figures: readonly Figure[]): string {
  const rows = figures.map((f) => {
    const capped = f.baselineCapped === true;
    return [
      f.label,
      String(f.size),
      formatValue(f.rik, f.unit),
      `${capped ? ">" : ""}${formatValue(f.baseline, f.unit)}`,
      f.ratio === null ? "-" : `${capped ? "<" : ""}${f.ratio.toFixed(3)}`,
      f.speedup === null ? "-" : `${capped ? ">" : ""}${f.speedup}x`,
    ];
  });
  return renderTable(["figure", "instances", "rik-network", "baseline", "rik/baseline", "speed-up"], rows);
}

export function renderTargets(targets: readonly Target[]): string {
  const rows = targets.map((t) => [
    t.label,
    t.expected,
    t.actual,
    t.pass === null ? "n/a" : t.pass ? "pass" : "FAIL",
    t.note ?? "",
  ]);
  return renderTable(["target", "expected", "actual", "result", "note"], rows);
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
  if (step.includes("iptables")) return "rules";
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

export function renderProfile(rows: readonly ProfileRow[], sizes: readonly number[], endToEnd: readonly Figure[]): string {
  const header = ["step (ms)", ...sizes.flatMap((s) => [`p50 @${s}`, `p99 @${s}`])];
  const cells = (values: (number | undefined)[]) => values.map((v) => (v === undefined ? "-" : String(round(v))));
  const perSize = (value: (size: number) => number | undefined) => cells(sizes.flatMap((s) => [value(s), undefined]));
  const body = rows.map((r) => [r.step, ...cells(sizes.flatMap((s) => [r.bySize[s]?.p50, r.bySize[s]?.p99]))]);
  const e2e = (key: string, size: number) => endToEnd.find((f) => f.key === key && f.size === size)?.rik ?? undefined;
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
