/**
 * What the benchmark reads from the machine: memory of a process, CPU idleness, and a
 * description of the host. Read-only: nothing here changes the system.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { namespacePids } from "../test/helpers/netns.js";

/**
 * `PATH` without the directories npm puts first under `npm run` (`node_modules/.bin` of the
 * project and its parents, npm's own helpers). One of the packages there installs a command named
 * `nft` (@vercel/nft, a file tracer), which would stand in for nftables' `nft` in everything the
 * bench runs, the service under test included.
 */
export function withoutPackageBins(searchPath: string): string {
  return searchPath
    .split(path.delimiter)
    .filter((dir) => dir !== "" && !dir.split(path.sep).includes("node_modules"))
    .join(path.delimiter);
}

export interface Memory {
  /** Resident set size, kB (VmRSS). */
  readonly rssKb: number;
  /** Peak resident set size, kB (VmHWM). */
  readonly hwmKb: number;
}

/** VmRSS and VmHWM of `pid` from /proc/<pid>/status. */
export function memoryOf(pid: number): Memory {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    if (match === null) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(match[1]);
  };
  return { rssKb: field("VmRSS"), hwmKb: field("VmHWM") };
}

function executableOf(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

function commandLineOf(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}

/**
 * The pid of the service's node process in `ns`. `ip netns exec` normally execs the command,
 * so the spawned pid is node's own; when it is not (an `ip` that forks), the node process is
 * found among the namespace's pids by its command line.
 */
export async function servicePid(ns: string, spawnedPid: number | undefined, marker: string): Promise<number> {
  const isService = (pid: number) => executableOf(pid) === process.execPath && commandLineOf(pid).includes(marker);
  if (spawnedPid !== undefined && isService(spawnedPid)) return spawnedPid;
  const candidates = (await namespacePids(ns)).filter(isService);
  if (candidates.length !== 1) throw new Error(`expected one service process in ${ns}, found ${candidates.length}`);
  return candidates[0]!;
}

interface CpuTimes {
  readonly idle: number;
  readonly total: number;
}

function cpuTimes(): CpuTimes {
  const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest times are already in user/nice)
  const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0);
  return { idle: (fields[3] ?? 0) + (fields[4] ?? 0), total };
}

/** /proc counts CPU time in USER_HZ ticks, which the kernel fixes at 100 per second for userspace. */
const USER_HZ = 100;

/** utime + stime of a /proc/<pid>/stat line, in ms. */
export function cpuMsOfStat(stat: string): number {
  // The command name (field 2) may hold spaces and parentheses; the fields after its last ")" are fixed: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
}

/** CPU time (user + system) `pid` has used so far, in ms. */
export function processCpuMs(pid: number): number {
  return cpuMsOfStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
}

/** Where the CPU went over an interval: the service, this process, and the whole machine. */
export interface CpuUse {
  /** Service CPU over the interval, in % of one core. */
  readonly servicePercent: number;
  /** This process's (the bench client's) CPU, in % of one core. */
  readonly benchPercent: number;
  /** Machine CPU busy (not idle or iowait), in % of all cores. */
  readonly machinePercent: number;
}

/** Starts measuring; the returned function ends the interval. */
export function cpuUse(servicePid: number): () => CpuUse {
  const started = performance.now();
  const service = processCpuMs(servicePid);
  const bench = process.cpuUsage();
  const machine = cpuTimes();
  return () => {
    const elapsedMs = performance.now() - started;
    const benchUsage = process.cpuUsage(bench);
    const after = cpuTimes();
    const total = after.total - machine.total;
    return {
      servicePercent: elapsedMs > 0 ? ((processCpuMs(servicePid) - service) * 100) / elapsedMs : 0,
      benchPercent: elapsedMs > 0 ? ((benchUsage.user + benchUsage.system) / 1000) * (100 / elapsedMs) : 0,
      machinePercent: total > 0 ? (1 - (after.idle - machine.idle) / total) * 100 : 0,
    };
  };
}

export interface Settled {
  readonly quiet: boolean;
  readonly waitedMs: number;
  /** Idle fraction of the last window. */
  readonly idle: number;
}

/**
 * Waits until the machine is quiet: the CPUs were at least `idleFraction` idle over one
 * `windowMs` window, e.g. after a namespace with thousands of TAPs was deleted (the kernel
 * tears it down in the background). Gives up after `maxMs` and says so.
 */
export async function settle({ idleFraction = 0.85, windowMs = 500, maxMs = 20_000 } = {}): Promise<Settled> {
  const started = performance.now();
  let idle = 0;
  for (;;) {
    const before = cpuTimes();
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const after = cpuTimes();
    const total = after.total - before.total;
    idle = total > 0 ? (after.idle - before.idle) / total : 1;
    const waitedMs = performance.now() - started;
    if (idle >= idleFraction) return { quiet: true, waitedMs, idle };
    if (waitedMs >= maxMs) return { quiet: false, waitedMs, idle };
  }
}

export interface HostInfo {
  readonly hostname: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryMb: number;
  readonly kernel: string;
  readonly node: string;
  readonly iptables: string;
  readonly iptablesLegacy: string;
  readonly nft: string;
  readonly loadAverage: readonly number[];
}

async function versionOf(file: string): Promise<string> {
  const result = await execa(file, ["--version"], { reject: false, timeout: 10_000 });
  return result.exitCode === 0 ? String(result.stdout).trim() : `unavailable (${String(result.stderr || result.shortMessage).trim()})`;
}

export async function hostInfo(): Promise<HostInfo> {
  return {
    hostname: os.hostname(),
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryMb: Math.round(os.totalmem() / 2 ** 20),
    kernel: os.release(),
    node: process.version,
    iptables: await versionOf("iptables"),
    iptablesLegacy: await versionOf("iptables-legacy"),
    nft: await versionOf("nft"),
    loadAverage: os.loadavg().map((value) => Math.round(value * 100) / 100),
  };
}
