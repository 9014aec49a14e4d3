/**
 * The data path: how long a connection through an exposed port takes to set up, as a client in
 * the world sees it. A guest behind the instance's TAP (test/helpers/attach-guest.ts: a
 * namespace wired to the TAP the way a VMM attaches to it) runs a TCP server that answers one
 * line with one line; a client in the world namespace connects to the node's address and the
 * exposed host port (DNATed to the guest), sends a line and waits for the answer. One sample is
 * that: TCP connect plus one request and its response, timed inside the client.
 *
 * Two nodes are sampled in turn, A B B A ..., so that whatever else loads the machine meanwhile
 * weighs on both alike: one with a single exposed instance, and one with the size's instances
 * besides. All traffic stays between namespaces of the bench (assertOwnNamespace).
 */
import { assertOwnNamespace } from "../test/helpers/guest-relay.js";
import { killProcess, spawnIn, type NsProcess } from "../test/helpers/netns.js";
import { ProcessOutput } from "../test/helpers/process-output.js";

// Plain JS for `node -e`. argv: [node, port]. Answers the first chunk of every connection, then
// closes it first, so that TIME_WAIT stays on the guest's side and the world's ports are freed.
const SERVER_SCRIPT = `
const net = require("node:net");
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on("error", () => {});
  socket.once("data", () => socket.end("pong\\n"));
});
server.on("error", (error) => { process.stderr.write(String(error.stack) + "\\n"); process.exit(1); });
server.listen(Number(process.argv[1]), "0.0.0.0", () => process.stdout.write("listening\\n"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
`;

// argv: [node, host, port, timeoutMs]. For every line N on stdin, one connection: prints
// "N ok <µs from connect() to the answer's first byte>" or "N err <code>", once it is closed.
const CLIENT_SCRIPT = `
const net = require("node:net");
const [host, port, timeoutMs] = process.argv.slice(1);
const lines = require("node:readline").createInterface({ input: process.stdin });
lines.on("close", () => process.exit(0));
lines.on("line", (id) => {
  let answeredUs;
  let done = false;
  const finish = (result) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.destroy();
    process.stdout.write(id + " " + result + "\\n");
  };
  const started = process.hrtime.bigint();
  const socket = net.connect({ host, port: Number(port), noDelay: true });
  const timer = setTimeout(() => finish("err ETIMEDOUT"), Number(timeoutMs));
  socket.on("connect", () => socket.write("ping\\n"));
  socket.once("data", () => { answeredUs = Number(process.hrtime.bigint() - started) / 1000; });
  socket.on("close", () => finish(answeredUs === undefined ? "err ECLOSED" : "ok " + answeredUs.toFixed(1)));
  socket.on("error", (error) => finish("err " + (error.code || "ERROR")));
});
process.stdout.write("ready\\n");
`;

export type ProbeAnswer = { readonly id: number; readonly ms: number } | { readonly id: number; readonly error: string };

/** One line of the client's output; undefined for anything else (its "ready"). */
export function parseProbeLine(line: string): ProbeAnswer | undefined {
  const match = /^(\d+) (?:ok (\d+(?:\.\d+)?)|err (\S+))$/.exec(line.trim());
  if (match === null) return undefined;
  const id = Number(match[1]);
  return match[2] !== undefined ? { id, ms: Number(match[2]) / 1000 } : { id, error: match[3]! };
}

/** The order of the samples: A B B A A B B A ..., so that a drift in the machine's load weighs on both sides alike. */
export function interleaving(samples: number): ("a" | "b")[] {
  return Array.from({ length: 2 * samples }, (_, index) => ((index + 1) % 4 < 2 ? "a" : "b"));
}

export interface ProbeServer {
  stop(): Promise<void>;
}

/** The guest's TCP server on `port`, in `guestNs`; resolves once it listens. Killed with its namespace. */
export async function startProbeServer(guestNs: string, port: number): Promise<ProbeServer> {
  assertOwnNamespace(guestNs);
  const subprocess = spawnIn(guestNs, process.execPath, ["-e", SERVER_SCRIPT, String(port)]);
  const output = new ProcessOutput(subprocess, `data-path server in ${guestNs}`);
  try {
    await output.waitForLine((line) => line === "listening", 10_000, '"listening"');
  } catch (error) {
    await killProcess(subprocess, "SIGKILL");
    throw error;
  }
  return { stop: async () => void (await killProcess(subprocess, "SIGTERM", 2000)) };
}

export interface ProbeClient {
  /** One connection; resolves with its time in ms, or rejects with the socket's error code. */
  sample(): Promise<number>;
  stop(): Promise<void>;
}

/** The world's client of `host:port`, in `worldNs`, a connection per `sample()`. Killed with its namespace. */
export async function startProbeClient(worldNs: string, host: string, port: number, timeoutMs = 5000): Promise<ProbeClient> {
  assertOwnNamespace(worldNs);
  const subprocess: NsProcess = spawnIn(worldNs, process.execPath, ["-e", CLIENT_SCRIPT, host, String(port), String(timeoutMs)]);
  const output = new ProcessOutput(subprocess, `data-path client in ${worldNs}`);
  const pending = new Map<number, { resolve: (ms: number) => void; reject: (error: Error) => void }>();
  output.onLine((line) => {
    const answer = parseProbeLine(line);
    const waiter = answer === undefined ? undefined : pending.get(answer.id);
    if (answer === undefined || waiter === undefined) return;
    pending.delete(answer.id);
    if ("ms" in answer) waiter.resolve(answer.ms);
    else waiter.reject(new Error(`connection to ${host}:${port} from ${worldNs}: ${answer.error}`));
  });
  void output.closed.then(() => {
    for (const waiter of pending.values()) waiter.reject(new Error(`data-path client in ${worldNs} ${output.describeExit()}\n${output.tail(5)}`));
    pending.clear();
  });
  try {
    await output.waitForLine((line) => line === "ready", 10_000, '"ready"');
  } catch (error) {
    await killProcess(subprocess, "SIGKILL");
    throw error;
  }
  let next = 0;
  return {
    sample: () =>
      new Promise<number>((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve, reject });
        subprocess.stdin?.write(`${id}\n`);
      }),
    stop: async () => void (await killProcess(subprocess, "SIGTERM", 2000)),
  };
}

export interface DataPathSamples {
  readonly a: number[];
  readonly b: number[];
  readonly failures: string[];
}

/**
 * `samples` connections on each client, in the order of `interleaving`, after `warmup`
 * unrecorded ones on each (ARP, the guest's and the relay's code paths, conntrack's caches).
 */
export async function sampleInterleaved(a: ProbeClient, b: ProbeClient, samples: number, warmup = 50): Promise<DataPathSamples> {
  const result: DataPathSamples = { a: [], b: [], failures: [] };
  const clients = { a, b };
  for (const [index, side] of [...interleaving(warmup), ...interleaving(samples)].entries()) {
    try {
      const ms = await clients[side].sample();
      if (index >= 2 * warmup) result[side].push(ms);
    } catch (error) {
      result.failures.push(`${side}: ${(error as Error).message}`);
    }
  }
  return result;
}
