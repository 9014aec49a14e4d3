/**
 * The real rik-network service, started inside a test's node namespace.
 */
import { TEST_FIREWALL_BACKEND, type TestFirewallBackend } from "./firewall-backend.js";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { checkHealth, createHealthClient } from "./health-client.js";
import { delay, killProcess, onNamespaceDelete, REPO_ROOT, spawnIn, type NsProcess } from "./netns.js";
import { ProcessOutput } from "./process-output.js";

const MAIN = path.join(REPO_ROOT, "src", "main.ts");
/** The compiled entry point, as `npm start` and the systemd unit run it (built by `npm run build`). */
export const COMPILED_MAIN = path.join(REPO_ROOT, "dist", "main.js");

export interface ServiceOptions {
  /** Namespace the service runs in (a topology's `node`). */
  readonly nodeNs: string;
  /** Address pool, `--pool`. Default 10.220.0.0/24. */
  readonly pool?: string;
  /** `--node-name`. Default "test-node". */
  readonly nodeName?: string;
  readonly mtu?: number;
  /** `--listen` (TCP address), off by default. */
  readonly listen?: string;
  /** `--log-level`. Default debug. */
  readonly logLevel?: "error" | "warn" | "info" | "debug";
  /** Unix socket path, `--socket`. Default `<fresh tmp dir>/rik.sock`; reuse one to restart a service. */
  readonly socketPath?: string;
  /** `--state-dir`. Default `state/` beside the socket, so a restart on the same socket finds its state. */
  readonly stateDir?: string;
  readonly extraArgs?: readonly string[];
  /** --firewall-backend; default TEST_FIREWALL_BACKEND. Left out when extraArgs sets it. */
  readonly firewallBackend?: TestFirewallBackend | "auto";
  readonly env?: Readonly<Record<string, string>>;
  /** How long to wait for readiness. Default 20 s. */
  readonly readyTimeoutMs?: number;
  /** Run dist/main.js (build it first) instead of the sources under tsx, as the bench does. Default false. */
  readonly compiled?: boolean;
  /**
   * Node arguments before the entry point, e.g. `["--import", "test/helpers/kill-at-step.ts"]`
   * to preload a test hook (into the sources run under tsx: it must import the same modules).
   */
  readonly nodeArgs?: readonly string[];
  /**
   * A command the service is started through, which ends by exec'ing its arguments (node
   * and the service's), e.g. `unshare -m ...` to give the service a mount of its own.
   */
  readonly launcher?: readonly string[];
}

/** One JSON log line of the service (winston: level, message, timestamp, metadata). */
export interface LogEntry {
  readonly level: string;
  readonly message: string;
  readonly timestamp?: string;
  readonly [key: string]: unknown;
}

export interface ExitInfo {
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  /** True when the process ignored `signal` for `timeoutMs` and was SIGKILLed. */
  readonly forced: boolean;
}

export interface ServiceProcess {
  readonly socketPath: string;
  /** gRPC target for @grpc/grpc-js: `unix:///...`. Unix sockets are not bound to a netns. */
  readonly address: string;
  readonly pid: number | undefined;
  readonly output: ProcessOutput;
  /** Parsed JSON log lines so far (stdout lines that are not JSON are skipped). */
  logs(): LogEntry[];
  /** Resolves with the first log entry (past or future) matching `test`. */
  waitForLog(test: (entry: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  /** Sends `signal` and waits for exit; SIGKILL after `timeoutMs`. Idempotent. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitInfo>;
  /** Resolves when the process exits, however that happens. */
  readonly exited: Promise<ExitInfo>;
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

/** The node arguments of the service for `options`: its entry point, then `serve` and its flags. */
export function serviceArgs(options: ServiceOptions & { readonly socketPath: string }): string[] {
  return [
    ...(options.compiled === true ? [...(options.nodeArgs ?? []), COMPILED_MAIN] : ["--import", "tsx", ...(options.nodeArgs ?? []), MAIN]),
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
    ...(options.extraArgs?.includes("--firewall-backend") === true ? [] : ["--firewall-backend", options.firewallBackend ?? TEST_FIREWALL_BACKEND]),
    ...(options.extraArgs ?? []),
  ];
}

/**
 * `ip netns exec <nodeNs> node --import tsx src/main.ts serve --socket ... --pool ... --node-name ...
 * --log-level debug`, resolved once the socket answers a gRPC health check with SERVING.
 * Killed when the node namespace is deleted.
 */
export async function startService(options: ServiceOptions): Promise<ServiceProcess> {
  let tmpDir: string | undefined;
  let socketPath = options.socketPath;
  if (socketPath === undefined) {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-svc-"));
    socketPath = path.join(tmpDir, "rik.sock");
  }
  const args = serviceArgs({ ...options, socketPath });
  const [file, ...launcherArgs] = [...(options.launcher ?? []), process.execPath];
  const subprocess: NsProcess = spawnIn(options.nodeNs, file!, [...launcherArgs, ...args], {
    cwd: REPO_ROOT,
    env: { ...options.env },
  });
  const output = new ProcessOutput(subprocess, `service in ${options.nodeNs}`);

  const exited: Promise<ExitInfo> = subprocess.then((result) => ({
    exitCode: result.exitCode,
    signal: result.signal,
    forced: false,
  }));
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
      const info = await exited;
      return { ...info, forced };
    })();
    return stopping;
  };
  onNamespaceDelete(options.nodeNs, async () => {
    await stop("SIGTERM", 5000);
    if (tmpDir !== undefined) fs.rmSync(tmpDir, { recursive: true, force: true });
  });

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

  try {
    await waitUntilReady(service, options.readyTimeoutMs ?? 20_000);
  } catch (error) {
    await killProcess(subprocess, "SIGKILL");
    throw error;
  }
  return service;
}

async function waitUntilReady(service: ServiceProcess, timeoutMs: number): Promise<void> {
  const { output } = service;
  const deadline = Date.now() + timeoutMs;
  let exitedEarly = false;
  void service.exited.then(() => {
    exitedEarly = true;
  });
  const readyLog = () => service.logs().some((entry) => entry.message === "ready");
  let lastProbe = "socket not created yet";
  while (Date.now() < deadline) {
    if (exitedEarly) {
      await output.closed;
      throw new Error(`service ${output.describeExit()} before becoming ready\n${output.tail()}`);
    }
    if (readyLog()) return;
    if (fs.existsSync(service.socketPath)) {
      lastProbe = await probeHealth(service.address, Math.min(1000, Math.max(100, deadline - Date.now())));
      if (lastProbe === "ready") return;
    }
    await delay(100);
  }
  throw new Error(`service not ready within ${timeoutMs} ms (last health probe: ${lastProbe})\n${output.tail()}`);
}

/** One health check over a fresh channel (so no reconnect back-off); "ready" or why not. */
export async function probeHealth(address: string, timeoutMs: number): Promise<string> {
  const client = createHealthClient(address);
  try {
    const status = await checkHealth(client, "", timeoutMs);
    return status === "SERVING" ? "ready" : `health status ${status}`;
  } catch (error) {
    const { code, details } = error as grpc.ServiceError;
    return `${grpc.status[code]}: ${details}`;
  } finally {
    client.close();
  }
}
