/**
 * A "guest" for a Function instance without a microVM: a network namespace whose `eth0` is
 * wired, frame for frame, to the service's TAP by `tap-relay.ts` (which attaches to the TAP
 * exactly as Firecracker does), and configured as a guest kernel booted with
 * `ip=<guest>::<host>:<mask>::eth0:off` would configure it.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Options as ExecaOptions } from "execa";
import { configureGuestNics, type GuestNetwork } from "./configure-guest-nics.js";
import {
  createNamespace,
  execIn,
  killProcess,
  onNamespaceDelete,
  REPO_ROOT,
  registeredNamespaces,
  setUpNamespace,
  spawnIn,
  TEST_PREFIX,
  uniqueName,
  type NsProcess,
} from "./netns.js";
import { ProcessOutput } from "./process-output.js";

const RELAY_SCRIPT = fileURLToPath(new URL("./tap-relay.ts", import.meta.url));

export interface GuestOptions extends GuestNetwork {
  /** Namespace holding the service's TAP (a topology's `node`). */
  readonly nodeNs: string;
  readonly tapName: string;
  /** Firecracker-like TUNSETOFFLOAD (csum, TSO4/6) on both TAP fds. Default true. */
  readonly offload?: boolean;
  /** Name of the guest namespace. Default `<topology id>-guest-<hex>` derived from `nodeNs`. */
  readonly guestNs?: string;
  readonly readyTimeoutMs?: number;
}

export interface Guest {
  readonly guestNs: string;
  /** The relay process (in the node namespace) and its output. */
  readonly relay: ProcessOutput;
  /** Runs a command inside the guest namespace, e.g. `exec("ip", "-j", "addr")`. */
  exec(file: string, ...args: string[]): ReturnType<typeof execIn>;
  /** Detaches from the TAP (kills the relay) and deletes the guest namespace. Idempotent. */
  stop(): Promise<void>;
}

/** Attaches a guest to `tapName` in `nodeNs`. Everything is removed by `stop()` or when the topology is disposed. */
export async function startGuest(options: GuestOptions): Promise<Guest> {
  const guestNs = options.guestNs ?? uniqueName(`${options.nodeNs.replace(/-node$/, "")}-guest`);
  const guestTap = `g${randomBytes(4).toString("hex")}`;
  await createNamespace(guestNs);

  let relayProcess: NsProcess | undefined;
  const stopRelay = async () => {
    if (relayProcess !== undefined) await killProcess(relayProcess, "SIGTERM", 2000);
  };
  onNamespaceDelete(guestNs, stopRelay);

  return setUpNamespace(guestNs, async () => {
    relayProcess = spawnIn(
      options.nodeNs,
      process.execPath,
      [
        "--import",
        "tsx",
        RELAY_SCRIPT,
        "--tap",
        options.tapName,
        "--guest-tap",
        guestTap,
        "--guest-ns",
        guestNs,
        ...(options.offload === false ? ["--no-offload"] : []),
      ],
      { cwd: REPO_ROOT },
    );
    const relay = new ProcessOutput(relayProcess, `tap relay for ${options.tapName}`);
    await relay.waitForLine((line) => line === "ready", options.readyTimeoutMs ?? 15_000, '"ready"');

    await configureGuestNics(guestNs, [{ ...options, nic: guestTap, renameTo: "eth0" }], 10_000);
    return { guestNs, relay };
  });
}

export interface HttpServer {
  readonly ns: string;
  readonly port: number;
  readonly body: string;
  readonly output: ProcessOutput;
  /** One entry per request served, in order. */
  requests(): HttpRequestRecord[];
  stop(): Promise<void>;
}

export interface HttpRequestRecord {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly method: string;
  readonly url: string;
}

// Plain JS for `node -e` (no tsx startup cost). argv: [node, port, host, bodyFile]. The body
// comes in a file: one command-line argument is limited to 128 KiB.
const SERVER_SCRIPT = `
const http = require("node:http");
const [port, host, bodyFile] = process.argv.slice(1);
const body = require("node:fs").readFileSync(bodyFile);
const server = http.createServer((req, res) => {
  const { remoteAddress, remotePort } = req.socket;
  process.stdout.write(JSON.stringify({ request: { remoteAddress, remotePort, method: req.method, url: req.url } }) + "\\n");
  res.writeHead(200, { "content-type": "text/plain", connection: "close" });
  res.end(body);
});
server.on("error", (error) => { process.stderr.write(String(error.stack) + "\\n"); process.exit(1); });
server.listen(Number(port), host, () => process.stdout.write("listening " + server.address().port + "\\n"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
`;

/**
 * Starts an HTTP server inside `ns` answering every request with `body`; resolves once it
 * listens. Killed by `stop()` or when its namespace is deleted.
 */
export async function startHttpServer(
  ns: string,
  port: number,
  body: string,
  options: { host?: string; readyTimeoutMs?: number } = {},
): Promise<HttpServer> {
  assertOwnNamespace(ns);
  const bodyDir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-http-"));
  const bodyFile = path.join(bodyDir, "body");
  fs.writeFileSync(bodyFile, body);
  const subprocess = spawnIn(ns, process.execPath, ["-e", SERVER_SCRIPT, String(port), options.host ?? "0.0.0.0", bodyFile]);
  const output = new ProcessOutput(subprocess, `http server in ${ns}`);
  try {
    await output.waitForLine((line) => line.startsWith("listening "), options.readyTimeoutMs ?? 10_000, '"listening"');
  } catch (error) {
    await killProcess(subprocess, "SIGKILL");
    throw error;
  } finally {
    fs.rmSync(bodyDir, { recursive: true, force: true });
  }
  return {
    ns,
    port,
    body,
    output,
    requests: () =>
      output.stdout.flatMap((line) => {
        if (!line.startsWith("{")) return [];
        const parsed = JSON.parse(line) as { request?: HttpRequestRecord };
        return parsed.request === undefined ? [] : [parsed.request];
      }),
    stop: async () => {
      await killProcess(subprocess, "SIGTERM", 2000);
    },
  };
}

export type HttpResult =
  | { readonly ok: true; readonly status: number; readonly body: string }
  | {
      readonly ok: false;
      /** `ETIMEDOUT` for no answer within the timeout, else the socket error code (`ECONNREFUSED`, `EHOSTUNREACH`, ...). */
      readonly code: string;
      readonly message: string;
    };

// argv: [node, url, timeoutMs, localAddress]
const CLIENT_SCRIPT = `
const http = require("node:http");
const [url, timeoutMs, localAddress] = process.argv.slice(1);
let done = false;
const finish = (result) => {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify(result) + "\\n", () => process.exit(0));
};
setTimeout(() => { finish({ ok: false, code: "ETIMEDOUT", message: "no answer within " + timeoutMs + " ms" }); request.destroy(); }, Number(timeoutMs));
const request = http.get(url, { agent: false, ...(localAddress ? { localAddress } : {}) }, (res) => {
  let body = "";
  res.setEncoding("utf8");
  res.on("data", (chunk) => { body += chunk; });
  res.on("end", () => finish({ ok: true, status: res.statusCode, body }));
  res.on("error", (error) => finish({ ok: false, code: error.code || "ERROR", message: error.message }));
});
request.on("error", (error) => finish({ ok: false, code: error.code || "ERROR", message: error.message }));
`;

/**
 * GETs `url` from inside `ns` (a namespace of this harness) and returns the body or a typed
 * failure. "No answer" takes exactly `timeoutMs` (plus node's start-up time).
 */
export async function httpGet(
  ns: string,
  url: string,
  timeoutMs = 2000,
  options: { localAddress?: string } = {},
): Promise<HttpResult> {
  assertOwnNamespace(ns);
  const execOptions: ExecaOptions = { timeout: timeoutMs + 10_000 };
  const result = await execIn(ns, process.execPath, ["-e", CLIENT_SCRIPT, url, String(timeoutMs), options.localAddress ?? ""], execOptions);
  const line = String(result.stdout).trim().split("\n").at(-1) ?? "";
  return JSON.parse(line) as HttpResult;
}

/** Test traffic only ever starts from namespaces this harness created. */
export function assertOwnNamespace(ns: string): void {
  if (!ns.startsWith(`${TEST_PREFIX}-`) || !registeredNamespaces().includes(ns)) {
    throw new Error(`${ns} is not a namespace created by this test process`);
  }
}
