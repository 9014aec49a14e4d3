/**
 * The service as it is deployed: compiled JavaScript (`node dist/main.js serve`), not the
 * TypeScript sources under tsx. tsx transpiles every module at start and keeps its loader in
 * memory, which a node never pays: under tsx the restart figure measured tsx (about 1.5 s of
 * 2.5 s at 5000 instances) and RSS grew by some 70 MB. So the bench builds dist/ when it is
 * missing or older than the sources, and starts the service from it.
 */
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { execa } from "execa";
import { delay, killProcess, onNamespaceDelete, REPO_ROOT, spawnIn, type NsProcess } from "../test/helpers/netns.js";
import { ProcessOutput } from "../test/helpers/process-output.js";
import { probeHealth, type ExitInfo, type LogEntry, type ServiceOptions, type ServiceProcess } from "../test/helpers/service-process.js";

/** The compiled entry point, as `npm start` and the systemd unit run it. */
export const COMPILED_MAIN = path.join(REPO_ROOT, "dist", "main.js");

/** What `npm run build` compiles from; a change to any of them makes dist/ stale. */
const BUILD_INPUTS = ["src", "tsconfig.json", "tsconfig.build.json", "package.json", "package-lock.json"];

/** Newest modification time (ms) among `paths`, directories walked recursively; 0 if none exists. */
export function newestMtimeMs(paths: readonly string[]): number {
  let newest = 0;
  for (const entry of paths) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(entry);
    } catch {
      continue;
    }
    if (stat.isDirectory()) {
      for (const name of fs.readdirSync(entry, { recursive: true }) as string[]) {
        const child = fs.statSync(path.join(entry, name));
        if (child.isFile()) newest = Math.max(newest, child.mtimeMs);
      }
    } else {
      newest = Math.max(newest, stat.mtimeMs);
    }
  }
  return newest;
}

/** Whether dist/ must be (re)built: no compiled entry point, or a source newer than it. */
export function needsBuild(compiledMtimeMs: number | undefined, newestSourceMtimeMs: number): boolean {
  return compiledMtimeMs === undefined || newestSourceMtimeMs > compiledMtimeMs;
}

/**
 * Runs `npm run build` (`tsc -p tsconfig.build.json`) when dist/ is missing or stale.
 * tsc runs directly, not through npm, so that its errors are in the thrown message.
 * Returns whether it built.
 */
export async function ensureBuilt(log: (line: string) => void): Promise<boolean> {
  let compiled: number | undefined;
  try {
    compiled = fs.statSync(COMPILED_MAIN).mtimeMs;
  } catch {
    compiled = undefined;
  }
  const sources = newestMtimeMs(BUILD_INPUTS.map((name) => path.join(REPO_ROOT, name)));
  if (!needsBuild(compiled, sources)) {
    log("dist/ is up to date with src/: not rebuilding");
    return false;
  }
  log(compiled === undefined ? "dist/main.js missing: npm run build" : "src/ changed since the last build: npm run build");
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const result = await execa(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: REPO_ROOT, reject: false, all: true });
  if (result.exitCode !== 0) throw new Error(`npm run build failed (exit code ${result.exitCode}):\n${String(result.all ?? "").trim()}`);
  return true;
}

/** The command line of `node dist/main.js serve` for `options`; the same flags as the test harness gives the tsx service. */
export function compiledServiceArgs(options: ServiceOptions & { socketPath: string }): string[] {
  return [
    COMPILED_MAIN,
    "serve",
    "--socket",
    options.socketPath,
    "--state-dir",
    options.stateDir ?? path.join(path.dirname(options.socketPath), "state"),
    "--pool",
    options.pool ?? "10.220.0.0/24",
    "--node-name",
    options.nodeName ?? "test-node",
    "--log-level",
    options.logLevel ?? "debug",
    ...(options.mtu === undefined ? [] : ["--mtu", String(options.mtu)]),
    ...(options.listen === undefined ? [] : ["--listen", options.listen]),
    ...(options.extraArgs ?? []),
  ];
}

function parseLog(line: string): LogEntry | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value = JSON.parse(line) as unknown;
    if (typeof value === "object" && value !== null && "message" in value) return value as LogEntry;
  } catch {
    // not JSON
  }
  return undefined;
}

/**
 * `ip netns exec <nodeNs> node dist/main.js serve ...`, resolved once the socket answers a
 * gRPC health check with SERVING (or the service logged "ready"). Killed when the node
 * namespace is deleted. Call `ensureBuilt` first.
 */
export async function startCompiledService(options: ServiceOptions & { socketPath: string }): Promise<ServiceProcess> {
  const { socketPath } = options;
  const subprocess: NsProcess = spawnIn(options.nodeNs, process.execPath, compiledServiceArgs(options), {
    cwd: REPO_ROOT,
    env: { ...options.env },
  });
  const output = new ProcessOutput(subprocess, `service in ${options.nodeNs}`);
  const exited: Promise<ExitInfo> = subprocess.then((result) => ({ exitCode: result.exitCode, signal: result.signal, forced: false }));
  let stopping: Promise<ExitInfo> | undefined;
  const stop = (signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<ExitInfo> => {
    stopping ??= (async () => {
      let forced = false;
      if (subprocess.exitCode === null && subprocess.signalCode === null) {
        subprocess.kill(signal);
        const timer = setTimeout(() => {
          forced = true;
          subprocess.kill("SIGKILL");
        }, timeoutMs);
        await subprocess;
        clearTimeout(timer);
      }
      return { ...(await exited), forced };
    })();
    return stopping;
  };
  onNamespaceDelete(options.nodeNs, () => stop("SIGTERM", 5000).then(() => undefined));

  const logs = () => output.stdout.flatMap((line) => parseLog(line) ?? []);
  const service: ServiceProcess = {
    socketPath,
    address: `unix://${socketPath}`,
    pid: subprocess.pid,
    output,
    logs,
    waitForLog: async (test, timeoutMs = 10_000) => {
      const line = await output.waitForLine((text) => {
        const entry = parseLog(text);
        return entry !== undefined && test(entry);
      }, timeoutMs, "matching log entry");
      return parseLog(line) as LogEntry;
    },
    stop,
    exited,
  };

  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
  });
  let lastProbe = "socket not created yet";
  try {
    while (Date.now() < deadline) {
      if (exitedEarly) {
        await output.closed;
        throw new Error(`service ${output.describeExit()} before becoming ready\n${output.tail()}`);
      }
      if (logs().some((entry) => entry.message === "ready")) return service;
      if (fs.existsSync(socketPath)) {
        lastProbe = await probeHealth(service.address, Math.min(1000, Math.max(100, deadline - Date.now())));
        if (lastProbe === "ready") return service;
      }
      await delay(100);
    }
    throw new Error(`service not ready within ${timeoutMs} ms (last health probe: ${lastProbe})\n${output.tail()}`);
  } catch (error) {
    await killProcess(subprocess, "SIGKILL");
    throw error;
  }
}
