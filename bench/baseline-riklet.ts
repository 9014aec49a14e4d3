/**
 * The baseline: riklet's way of setting up the same network, one command per step.
 *
 * Per instance, CREATE runs
 *   ip tuntap add <tap> mode tap ; ip addr add <host>/30 dev <tap> ; ip link set <tap> up
 * then, for each of the 3 rules (DNAT, FORWARD in, FORWARD egress),
 *   iptables -t T -L -n ; iptables -t T -L CHAIN -n ; iptables -t T -C CHAIN rule ; iptables -t T -A CHAIN rule
 * (the append only when the check says the rule is absent): 15 execs. DESTROY runs, per rule,
 * `-C` then `-D` (only when present), then `ip link del <tap>`: 7 execs.
 *
 * Fairness: the commands run from one bash process inside the baseline's namespace, which
 * also takes the timestamps ($EPOCHREALTIME, µs). So no `ip netns exec`, IPC or Node.js
 * overhead is charged to the baseline, and each exec costs a bash fork+exec, about what the
 * posix_spawn of riklet's Rust `Command` costs (Node's own spawn is 2-3x slower on the
 * machines we tried). `-L` listings go to /dev/null, where riklet reads them into memory.
 * Every iptables call gets `-w` (wait for the xtables lock): without it concurrent legacy
 * calls fail instead of queueing; nf_tables ignores it.
 *
 * The rule texts are rik-network's own (same matches and comments), kept the way riklet keeps
 * them: in one chain per table (RIKLET and RIKLET-INSTANCES, where rik-network shards them),
 * with riklet's node setup (those two chains, their jumps and the MASQUERADE).
 */
import fs from "node:fs";
import path from "node:path";
import type { Rule } from "../src/network/firewall/iptables/iptables-rules.js";
import { createNamespace, delay, deleteNamespace, namespacePids, spawnIn, uniqueName } from "../test/helpers/netns.js";
import type { BenchInstance, InstancePlan } from "./instances.js";
import { fillRestore, fillTapBatch, rikletRulesOf, rikletSetupRestore } from "./kernel-texts.js";
import type { IptablesBackend } from "./options.js";
import type { Progress } from "./progress.js";
import { runIn } from "./ns-run.js";
import { shellLine, splitSpec } from "./shell.js";

export interface IptablesBinaries {
  readonly iptables: string;
  readonly restore: string;
  readonly save: string;
}

export function binariesFor(backend: IptablesBackend): IptablesBinaries {
  return backend === "legacy"
    ? { iptables: "iptables-legacy", restore: "iptables-legacy-restore", save: "iptables-legacy-save" }
    : { iptables: "iptables", restore: "iptables-restore", save: "iptables-save" };
}

/** One step of riklet's sequence; each `argv` is one exec. */
export type BaselineStep =
  /** Must succeed. */
  | { readonly kind: "run"; readonly argv: readonly string[] }
  /** Output thrown away; must succeed. */
  | { readonly kind: "list"; readonly argv: readonly string[] }
  /** `check` fails when the rule is absent: then `change` runs (and must succeed). */
  | { readonly kind: "unless-present"; readonly check: readonly string[]; readonly change: readonly string[] }
  /** `check` succeeds when the rule is present: then `change` runs; an absent rule is a failure. */
  | { readonly kind: "if-present"; readonly check: readonly string[]; readonly change: readonly string[] };

function ruleArgs(bins: IptablesBinaries, rule: Rule, verb: "-C" | "-A" | "-D"): string[] {
  return [bins.iptables, "-w", "-t", rule.table, verb, rule.chain, ...splitSpec(rule.spec)];
}

export function createSteps(instance: BenchInstance, bins: IptablesBinaries): BaselineStep[] {
  const { tapName, hostIp } = instance;
  const steps: BaselineStep[] = [
    { kind: "run", argv: ["ip", "tuntap", "add", tapName, "mode", "tap"] },
    { kind: "run", argv: ["ip", "addr", "add", `${hostIp}/30`, "dev", tapName] },
    { kind: "run", argv: ["ip", "link", "set", tapName, "up"] },
  ];
  for (const rule of rikletRulesOf(instance)) {
    steps.push(
      { kind: "list", argv: [bins.iptables, "-w", "-t", rule.table, "-L", "-n"] },
      { kind: "list", argv: [bins.iptables, "-w", "-t", rule.table, "-L", rule.chain, "-n"] },
      { kind: "unless-present", check: ruleArgs(bins, rule, "-C"), change: ruleArgs(bins, rule, "-A") },
    );
  }
  return steps;
}

export function destroySteps(instance: BenchInstance, bins: IptablesBinaries): BaselineStep[] {
  const steps: BaselineStep[] = rikletRulesOf(instance).map((rule) => ({
    kind: "if-present",
    check: ruleArgs(bins, rule, "-C"),
    change: ruleArgs(bins, rule, "-D"),
  }));
  steps.push({ kind: "run", argv: ["ip", "link", "del", instance.tapName] });
  return steps;
}

/** How many processes a sequence execs when every check finds what CREATE / DESTROY expect. */
export function execCount(steps: readonly BaselineStep[]): number {
  return steps.reduce((count, step) => count + (step.kind === "run" || step.kind === "list" ? 1 : 2), 0);
}

/** bash text of one step; a failure prints a `FAIL` line and the sequence goes on. */
export function renderStep(step: BaselineStep): string {
  const failed = (argv: readonly string[]) => shellLine(["echo", `FAIL ${argv.join(" ")}`]);
  switch (step.kind) {
    case "run":
      return `${shellLine(step.argv)} || ${failed(step.argv)}`;
    case "list":
      return `${shellLine(step.argv)} >/dev/null || ${failed(step.argv)}`;
    case "unless-present":
      return `${shellLine(step.check)} 2>/dev/null || ${shellLine(step.change)} || ${failed(step.change)}`;
    case "if-present":
      return `if ${shellLine(step.check)}; then ${shellLine(step.change)} || ${failed(step.change)}; else ${failed(step.check)}; fi`;
  }
}

const PRELUDE = "set -u\nexport LC_ALL=C\n";

/**
 * Sequential create+destroy pairs. Prints `PAIR <label> <start> <created> <destroyed>` per
 * pair, timestamps from $EPOCHREALTIME.
 */
export function pairsScript(pairs: readonly { label: string; instance: BenchInstance }[], bins: IptablesBinaries): string {
  let script = PRELUDE;
  for (const { label, instance } of pairs) {
    script += "s=$EPOCHREALTIME\n";
    script += createSteps(instance, bins).map(renderStep).join("\n") + "\n";
    script += "m=$EPOCHREALTIME\n";
    script += destroySteps(instance, bins).map(renderStep).join("\n") + "\n";
    script += `e=$EPOCHREALTIME\necho "PAIR ${label} $s $m $e"\n`;
  }
  return script;
}

/** Every instance's sequence at once (one background subshell each). Prints `WALL <start> <end>`. */
export function concurrentScript(
  instances: readonly BenchInstance[],
  action: "create" | "destroy",
  bins: IptablesBinaries,
): string {
  let script = `${PRELUDE}s=$EPOCHREALTIME\n`;
  for (const instance of instances) {
    const steps = action === "create" ? createSteps(instance, bins) : destroySteps(instance, bins);
    script += `{\n${steps.map(renderStep).join("\n")}\n} &\n`;
  }
  script += `wait\ne=$EPOCHREALTIME\necho "WALL $s $e"\n`;
  return script;
}

/** An $EPOCHREALTIME value ("1712345678.123456", C locale) in milliseconds. */
export function epochMs(text: string): number {
  const match = /^(\d+)\.(\d{1,6})$/.exec(text);
  if (match === null) throw new Error(`not an $EPOCHREALTIME value: "${text}"`);
  return Number(match[1]) * 1000 + Number(match[2]!.padEnd(6, "0")) / 1000;
}

export interface ScriptOutput {
  readonly pairs: { label: string; createMs: number; destroyMs: number }[];
  readonly wallMs: number | undefined;
  readonly failures: string[];
}

export function parseScriptOutput(stdout: string): ScriptOutput {
  const pairs: ScriptOutput["pairs"] = [];
  const failures: string[] = [];
  let wallMs: number | undefined;
  for (const line of stdout.split("\n")) {
    const fields = line.trim().split(" ");
    if (fields[0] === "PAIR" && fields.length === 5) {
      const [start, created, destroyed] = [epochMs(fields[2]!), epochMs(fields[3]!), epochMs(fields[4]!)];
      pairs.push({ label: fields[1]!, createMs: created - start, destroyMs: destroyed - created });
    } else if (fields[0] === "WALL" && fields.length === 3) {
      wallMs = epochMs(fields[2]!) - epochMs(fields[1]!);
    } else if (fields[0] === "FAIL") {
      failures.push(line.trim().slice(5));
    }
  }
  return { pairs, wallMs, failures };
}

export interface BaselineResult {
  readonly size: number;
  readonly namespace: string;
  readonly fillMs: number;
  readonly createMs: number[];
  readonly destroyMs: number[];
  /** Wall time; when `capped`, the run was stopped at the cap and the figure is a lower bound. */
  readonly concurrentCreate: WallTime | undefined;
  /** Not run (undefined) when the concurrent creates were capped. */
  readonly concurrentDestroy: WallTime | undefined;
  /** Commands that failed (each is also a lost sample); empty on a clean run. */
  readonly failures: string[];
  readonly execsPerCreate: number;
  readonly execsPerDestroy: number;
}

export interface WallTime {
  readonly ms: number;
  readonly capped: boolean;
}

export interface BaselineRunOptions {
  readonly pool: string;
  readonly backend: IptablesBackend;
  readonly size: number;
  readonly plan: InstancePlan;
  /** Where the generated scripts are written (a directory the run removes at the end). */
  readonly scriptDir: string;
  /** Longest a concurrent batch may run; past it every process of the batch is killed and the wall time is reported as at least this. */
  readonly capMs: number;
  readonly progress: Progress;
}

type ScriptRun = ScriptOutput & { readonly timedOut: boolean };

async function runScript(ns: string, file: string, script: string, timeoutMs: number): Promise<ScriptRun> {
  fs.writeFileSync(file, script);
  const subprocess = spawnIn(ns, "bash", [file], { buffer: true, stdin: "ignore", timeout: timeoutMs, maxBuffer: 64 * 2 ** 20 });
  const result = await subprocess;
  if (result.timedOut) {
    // bash is gone, its background subshells and their iptables children are not: everything
    // in this namespace is ours, so kill all of it before the next step.
    for (let attempt = 0; attempt < 50; attempt++) {
      const pids = await namespacePids(ns);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await delay(100);
    }
    return { ...parseScriptOutput(String(result.stdout ?? "")), timedOut: true };
  }
  if (result.exitCode !== 0) {
    throw new Error(`baseline script ${file} failed (${result.signal ?? `exit code ${result.exitCode}`}): ${String(result.stderr ?? "").trim().split("\n").slice(-10).join("\n")}`);
  }
  return { ...parseScriptOutput(String(result.stdout ?? "")), timedOut: false };
}

/** Counts the rules in the namespace whose comment marks them as belonging to `prefix-*` instances. */
async function countRules(ns: string, bins: IptablesBinaries, prefix: string): Promise<number> {
  const { stdout } = await runIn(ns, bins.save, []);
  return stdout.split("\n").filter((line) => line.includes(`rik:${prefix}-`)).length;
}

/** Runs the baseline for one size in a fresh namespace, and deletes the namespace. */
export async function measureBaseline(options: BaselineRunOptions): Promise<BaselineResult> {
  const { plan, progress, size } = options;
  const bins = binariesFor(options.backend);
  const ns = await createNamespace(uniqueName("rikt-bench"));
  const failures: string[] = [];
  try {
    progress.step(`baseline @${size}: namespace ${ns}, node setup, fill`);
    await runIn(ns, bins.restore, ["--noflush"], { input: rikletSetupRestore(options.pool) });
    const fillStart = performance.now();
    if (plan.fill.length > 0) {
      await runIn(ns, bins.restore, ["--noflush"], { input: fillRestore(plan.fill, rikletRulesOf), timeoutMs: 300_000 });
      await runIn(ns, "ip", ["-batch", "-"], { input: fillTapBatch(plan.fill), timeoutMs: 300_000 });
    }
    const fillMs = performance.now() - fillStart;

    progress.step(`baseline @${size}: ${plan.warmup.length} warm-up + ${plan.sequential.length} sequential create+destroy pairs`);
    const pairs = [
      ...plan.warmup.map((instance) => ({ label: "warm", instance })),
      ...plan.sequential.map((instance) => ({ label: "sample", instance })),
    ];
    const sequential = await runScript(ns, path.join(options.scriptDir, `pairs-${size}.sh`), pairsScript(pairs, bins), 6 * 3_600_000);
    failures.push(...sequential.failures);
    const samples = sequential.pairs.filter((pair) => pair.label === "sample");
    if (samples.length !== plan.sequential.length) throw new Error(`baseline printed ${samples.length} of ${plan.sequential.length} samples`);

    progress.step(`baseline @${size}: ${plan.concurrent.length} concurrent creates, then destroys (each capped at ${Math.round(options.capMs / 1000)} s)`);
    const wall = (run: ScriptRun): WallTime | undefined =>
      run.timedOut ? { ms: options.capMs, capped: true } : run.wallMs === undefined ? undefined : { ms: run.wallMs, capped: false };
    const created = await runScript(
      ns,
      path.join(options.scriptDir, `create-${size}.sh`),
      concurrentScript(plan.concurrent, "create", bins),
      options.capMs,
    );
    let destroyed: ScriptRun | undefined;
    if (created.timedOut) {
      progress.step(`baseline @${size}: the concurrent creates did not finish within the cap; concurrent destroys not measured`);
    } else {
      failures.push(...created.failures);
      const rules = await countRules(ns, bins, "conc");
      if (rules !== 3 * plan.concurrent.length) failures.push(`after the concurrent creates: ${rules} rules, expected ${3 * plan.concurrent.length}`);
      destroyed = await runScript(
        ns,
        path.join(options.scriptDir, `destroy-${size}.sh`),
        concurrentScript(plan.concurrent, "destroy", bins),
        options.capMs,
      );
      if (!destroyed.timedOut) failures.push(...destroyed.failures);
    }

    const sample = plan.sequential[0] ?? plan.concurrent[0]!;
    return {
      size,
      namespace: ns,
      fillMs,
      createMs: samples.map((pair) => pair.createMs),
      destroyMs: samples.map((pair) => pair.destroyMs),
      concurrentCreate: wall(created),
      concurrentDestroy: destroyed === undefined ? undefined : wall(destroyed),
      failures,
      execsPerCreate: execCount(createSteps(sample, bins)),
      execsPerDestroy: execCount(destroySteps(sample, bins)),
    };
  } finally {
    progress.step(`baseline @${size}: deleting namespace ${ns}`);
    await deleteNamespace(ns);
  }
}
