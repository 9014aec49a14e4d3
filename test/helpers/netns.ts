/**
 * Network namespaces for integration tests.
 *
 * Safety: nothing here touches the root network namespace. Every namespace is created
 * with a unique name, recorded in a process-wide registry, and removed by `dispose()` /
 * `deleteNamespace()` — and, as a last resort, synchronously on process exit or on a
 * terminating signal. Every process started with `spawnIn()` is tracked per namespace and
 * killed before its namespace is deleted; any other process still inside the namespace
 * (`ip netns pids`) is SIGKILLed too, since a live process would keep the namespace (and
 * its TAPs) alive after its name is gone.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type Options as ExecaOptions, type ResultPromise } from "execa";

/** Repository root: child `node --import tsx` processes run here so `tsx` resolves. */
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Prefix of every namespace this harness creates. */
export const TEST_PREFIX = "rikt";

/** A process started by `spawnIn`: an execa subprocess that never rejects (reject: false). */
export type NsProcess = ResultPromise<{ reject: false }>;

type Cleanup = () => unknown | Promise<unknown>;

interface NamespaceEntry {
  readonly name: string;
  readonly processes: Set<NsProcess>;
  /** Run (last registered first) before the namespace's processes are killed. */
  readonly cleanups: Cleanup[];
  deleting?: Promise<void>;
}

const registry = new Map<string, NamespaceEntry>();

/** Owner files let `sweepStaleNamespaces` tell a crashed run's namespaces from a live one's. */
const OWNER_DIR = path.join(os.tmpdir(), "rikt-owners");

/** `${prefix}-${6 random hex digits}`, e.g. `rikt-3fa9c1`. */
export function uniqueName(prefix: string = TEST_PREFIX): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

/** `ip netns exec NS file args...`, awaited. Rejects (execa error with stderr) on failure. */
export async function execIn(
  ns: string,
  file: string,
  args: readonly string[] = [],
  options: ExecaOptions = {},
) {
  return execa("ip", ["netns", "exec", ns, file, ...args], { timeout: 30_000, ...options });
}

/** Runs `ip args...` in the root context (only for `ip netns ...` / `ip -n NS ...` commands). */
async function ip(args: readonly string[], options: ExecaOptions = {}) {
  return execa("ip", args, { timeout: 30_000, ...options });
}

/**
 * Starts a long-running process inside `ns`. `ip netns exec` execs the command, so the pid
 * is the command's own. The process is killed when its namespace is deleted (or earlier by
 * `killProcess`). stdin stays an open pipe so a helper script can notice its parent dying.
 * stdout/stderr are pipes that must be read (wrap the process in `ProcessOutput`), or the child
 * blocks once a pipe fills; pass `stdout: "ignore"` etc. otherwise.
 */
export function spawnIn(
  ns: string,
  file: string,
  args: readonly string[] = [],
  options: Omit<ExecaOptions, "reject"> = {},
): NsProcess {
  const entry = registry.get(ns);
  if (entry === undefined) throw new Error(`spawnIn: namespace ${ns} was not created by this harness`);
  if (entry.deleting !== undefined) throw new Error(`spawnIn: namespace ${ns} is being deleted`);
  const subprocess = execa("ip", ["netns", "exec", ns, file, ...args], {
    stdin: "pipe",
    buffer: false,
    ...options,
    reject: false,
  }) as NsProcess;
  entry.processes.add(subprocess);
  void subprocess.then(() => entry.processes.delete(subprocess));
  return subprocess;
}

/** True once the subprocess has exited (or failed to start). */
export function hasExited(subprocess: NsProcess): boolean {
  return subprocess.exitCode !== null || subprocess.signalCode !== null || subprocess.pid === undefined;
}

/** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function killProcess(subprocess: NsProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 3000) {
  if (!hasExited(subprocess)) {
    subprocess.kill(signal);
    const timer = setTimeout(() => subprocess.kill("SIGKILL"), graceMs);
    try {
      await subprocess;
    } finally {
      clearTimeout(timer);
    }
  }
  return subprocess;
}

/** Registers `fn` to run when `ns` is deleted (before its processes are killed). */
export function onNamespaceDelete(ns: string, fn: Cleanup): void {
  const entry = registry.get(ns);
  if (entry === undefined) throw new Error(`onNamespaceDelete: unknown namespace ${ns}`);
  entry.cleanups.push(fn);
}

/** Names of all network namespaces on the machine (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await ip(["netns", "list"]);
  return parseNetnsList(String(stdout));
}

function parseNetnsList(stdout: string): string[] {
  // Lines look like "name" or "name (id: 3)".
  return stdout
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name !== "");
}

/** Pids of the processes whose network namespace is `ns`. */
export async function namespacePids(ns: string): Promise<number[]> {
  const result = await ip(["netns", "pids", ns], { reject: false });
  if (result.exitCode !== 0) return [];
  return parsePids(String(result.stdout));
}

function parsePids(stdout: string): number[] {
  return stdout
    .split("\n")
    .map((line) => Number.parseInt(line.trim(), 10))
    .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
}

/** Creates namespace `name` with `lo` up. It is registered for cleanup before it exists. */
export async function createNamespace(name: string): Promise<string> {
  if (!name.startsWith(`${TEST_PREFIX}-`)) {
    throw new Error(`createNamespace: ${name} must start with "${TEST_PREFIX}-" so it can be swept`);
  }
  if (registry.has(name)) throw new Error(`createNamespace: ${name} already exists`);
  installExitHandlers();
  registry.set(name, { name, processes: new Set(), cleanups: [] });
  fs.mkdirSync(OWNER_DIR, { recursive: true });
  fs.writeFileSync(path.join(OWNER_DIR, name), `${process.pid}\n`);
  try {
    await ip(["netns", "add", name]);
    await ip(["-n", name, "link", "set", "lo", "up"]);
  } catch (error) {
    await deleteNamespace(name);
    throw error;
  }
  return name;
}

/**
 * Runs the namespace's cleanups, kills its tracked processes (SIGTERM, then SIGKILL), SIGKILLs
 * any process still inside it, and deletes it. Idempotent; concurrent calls share one deletion.
 */
export async function deleteNamespace(name: string): Promise<void> {
  const entry = registry.get(name);
  if (entry === undefined) return;
  entry.deleting ??= (async () => {
    const errors: unknown[] = [];
    for (const cleanup of entry.cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (error) {
        errors.push(error);
      }
    }
    await Promise.all([...entry.processes].map((subprocess) => killProcess(subprocess)));
    for (let attempt = 0; attempt < 20; attempt++) {
      const pids = await namespacePids(name);
      if (pids.length === 0) break;
      for (const pid of pids) killQuietly(pid, "SIGKILL");
      await delay(50);
    }
    const result = await ip(["netns", "del", name], { reject: false });
    if (result.exitCode !== 0 && (await listNamespaces()).includes(name)) {
      errors.push(new Error(`ip netns del ${name} failed: ${String(result.stderr)}`));
    }
    fs.rmSync(path.join(OWNER_DIR, name), { force: true });
    registry.delete(name);
    if (errors.length > 0) throw new AggregateError(errors, `cleanup of namespace ${name} failed`);
  })();
  return entry.deleting;
}

/** A namespace of this harness, as set up by `setUpNamespace`. */
export interface NamespaceHandle {
  /** Runs a command inside the namespace. */
  exec(file: string, ...args: string[]): ReturnType<typeof execIn>;
  /** Deletes the namespace (see `deleteNamespace`). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `setUp` for the (created) namespace `ns` and returns its result with `exec` and `stop`
 * for `ns`. If `setUp` fails, deletes `ns` and rethrows.
 */
export async function setUpNamespace<T extends object>(ns: string, setUp: () => Promise<T>): Promise<T & NamespaceHandle> {
  try {
    const result = await setUp();
    let stopping: Promise<void> | undefined;
    return {
      ...result,
      exec: (file: string, ...args: string[]) => execIn(ns, file, args),
      stop: () => {
        stopping ??= deleteNamespace(ns);
        return stopping;
      },
    };
  } catch (error) {
    await deleteNamespace(ns).catch(() => undefined);
    throw error;
  }
}

/** Deletes every registered namespace whose name starts with `prefix`. */
export async function deleteNamespacesWithPrefix(prefix: string): Promise<void> {
  const names = [...registry.keys()].filter((name) => name.startsWith(prefix));
  const results = await Promise.allSettled(names.map((name) => deleteNamespace(name)));
  const errors = results.flatMap((result) => (result.status === "rejected" ? [result.reason] : []));
  if (errors.length > 0) throw new AggregateError(errors, `cleanup of ${prefix}* failed`);
}

/** Names of the namespaces this process created and has not deleted yet. */
export function registeredNamespaces(): string[] {
  return [...registry.keys()];
}

/**
 * Removes `rikt-*` namespaces left behind by a run that crashed (its owner process is gone,
 * or it has no owner file). Namespaces of live runs (e.g. ava's parallel workers) are kept.
 */
export async function sweepStaleNamespaces(): Promise<string[]> {
  const swept: string[] = [];
  for (const name of await listNamespaces()) {
    if (!name.startsWith(`${TEST_PREFIX}-`) || registry.has(name)) continue;
    const ownerFile = path.join(OWNER_DIR, name);
    let owner = Number.NaN;
    try {
      owner = Number.parseInt(fs.readFileSync(ownerFile, "utf8"), 10);
    } catch {
      // no owner file: stale
    }
    if (Number.isInteger(owner) && isAlive(owner)) continue;
    for (const pid of await namespacePids(name)) killQuietly(pid, "SIGKILL");
    await ip(["netns", "del", name], { reject: false });
    fs.rmSync(ownerFile, { force: true });
    swept.push(name);
  }
  return swept;
}

/** Sets a sysctl inside `ns` (network sysctls are per namespace), e.g. `net.ipv4.ip_forward`. */
export async function setSysctl(ns: string, key: string, value: string | number): Promise<void> {
  await execIn(ns, "sysctl", ["-q", "-w", `${key}=${value}`]);
}

/** Something with ava's `t.teardown`. */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface TopologyOptions {
  /** Third octet k of the world<->node link 198.18.k.0/24. Default 0. */
  readonly subnet?: number;
  /** Add `default via <nodeIp>` in world. Default false: world reaches only the node's veth address. */
  readonly worldDefaultRoute?: boolean;
  /** Registers `dispose()` with `t.teardown`. */
  readonly teardown?: TeardownHost;
}

/**
 * Per-test namespaces: `node` (where the service runs), `world` (an outside client) and a veth
 * pair joining them: node `veth-world` 198.18.k.1/24 <-> world `veth-node` 198.18.k.2/24.
 * Guests started with `startGuest({ nodeNs: topology.node, ... })` get `<id>-guest-<hex>`
 * namespaces, which `dispose()` removes too.
 */
export class Topology {
  readonly id: string;
  readonly node: string;
  readonly world: string;
  readonly nodeIp: string;
  readonly worldIp: string;
  readonly linkPrefixLength = 24;
  /** The veth end in the node namespace. */
  readonly nodeVeth = "veth-world";
  /** The veth end in the world namespace. */
  readonly worldVeth = "veth-node";
  private disposing?: Promise<void>;

  private constructor(id: string, subnet: number) {
    this.id = id;
    this.node = `${id}-node`;
    this.world = `${id}-world`;
    this.nodeIp = `198.18.${subnet}.1`;
    this.worldIp = `198.18.${subnet}.2`;
  }

  static async create(options: TopologyOptions = {}): Promise<Topology> {
    const subnet = options.subnet ?? 0;
    if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) throw new Error(`bad subnet ${subnet}`);
    await sweepOnce();
    const topology = new Topology(uniqueName(TEST_PREFIX), subnet);
    options.teardown?.teardown(() => topology.dispose());
    try {
      await createNamespace(topology.node);
      await createNamespace(topology.world);
      const { node, world, nodeVeth, worldVeth } = topology;
      // Created inside node with its peer directly in world: never exists in the root namespace.
      await ip(["-n", node, "link", "add", nodeVeth, "type", "veth", "peer", "name", worldVeth, "netns", world]);
      await ip(["-n", node, "addr", "add", `${topology.nodeIp}/24`, "dev", nodeVeth]);
      await ip(["-n", world, "addr", "add", `${topology.worldIp}/24`, "dev", worldVeth]);
      await ip(["-n", node, "link", "set", nodeVeth, "up"]);
      await ip(["-n", world, "link", "set", worldVeth, "up"]);
      if (options.worldDefaultRoute === true) {
        await ip(["-n", world, "route", "add", "default", "via", topology.nodeIp]);
      }
    } catch (error) {
      await topology.dispose();
      throw error;
    }
    return topology;
  }

  /** `ip netns exec <node> file args...` */
  execNode(file: string, args: readonly string[] = [], options: ExecaOptions = {}) {
    return execIn(this.node, file, args, options);
  }

  /** `ip netns exec <world> file args...` */
  execWorld(file: string, args: readonly string[] = [], options: ExecaOptions = {}) {
    return execIn(this.world, file, args, options);
  }

  /** Namespaces of this topology that still exist (node, world, guests). */
  namespaces(): string[] {
    return registeredNamespaces().filter((name) => name.startsWith(`${this.id}-`));
  }

  /** Kills every process and deletes every namespace of this topology. Idempotent. */
  dispose(): Promise<void> {
    // Guests first: their relays hold fds of TAPs that live in node.
    this.disposing ??= (async () => {
      const guests = this.namespaces().filter((name) => name !== this.node && name !== this.world);
      await Promise.allSettled(guests.map((name) => deleteNamespace(name)));
      await deleteNamespacesWithPrefix(`${this.id}-`);
    })();
    return this.disposing;
  }
}

let swept: Promise<unknown> | undefined;
function sweepOnce(): Promise<unknown> {
  swept ??= sweepStaleNamespaces().catch(() => []);
  return swept;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Last resort, synchronous: kill everything we started and delete our namespaces. */
function cleanupSync(): void {
  for (const entry of registry.values()) {
    for (const subprocess of entry.processes) {
      if (subprocess.pid !== undefined && !hasExited(subprocess)) killQuietly(subprocess.pid, "SIGKILL");
    }
    try {
      const pids = parsePids(execFileSync("ip", ["netns", "pids", entry.name], { encoding: "utf8", timeout: 5000 }));
      for (const pid of pids) killQuietly(pid, "SIGKILL");
    } catch {
      // namespace already gone
    }
    try {
      execFileSync("ip", ["netns", "del", entry.name], { stdio: "ignore", timeout: 5000 });
    } catch {
      // already gone
    }
    fs.rmSync(path.join(OWNER_DIR, entry.name), { force: true });
  }
  registry.clear();
}

let exitHandlersInstalled = false;
function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on("exit", cleanupSync);
  // ava kills a worker with SIGTERM on timeout. Clean up, then let the signal do what it would
  // have done without us: re-raise it with our handlers gone. (execa's signal-exit handlers only
  // act when theirs are the sole listeners, so they kill the process on the second delivery.)
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    handlers.set(signal, () => {
      cleanupSync();
      for (const [name, handler] of handlers) process.removeListener(name, handler);
      process.kill(process.pid, signal);
    });
  }
  for (const [signal, handler] of handlers) process.on(signal, handler);
}
