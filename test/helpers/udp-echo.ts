/**
 * A UDP "service" inside a test namespace, the UDP counterpart of `startHttpServer`: it answers
 * every datagram with a fixed reply, so a client can tell which namespace (which guest)
 * answered, and records who sent each datagram, so a test can check addresses after NAT.
 * Its socket is bound and never connected: exactly what the service's port check must see as
 * "a UDP port in use" when it runs in the node namespace.
 */
import { assertOwnNamespace } from "./guest-relay.js";
import { killProcess, spawnIn } from "./netns.js";
import { ProcessOutput } from "./process-output.js";

export interface UdpDatagramRecord {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly payload: string;
}

export interface UdpEcho {
  readonly ns: string;
  readonly port: number;
  readonly reply: string;
  readonly output: ProcessOutput;
  /** One entry per datagram received, in order. */
  datagrams(): UdpDatagramRecord[];
  stop(): Promise<void>;
}

// Plain JS for `node -e` (no tsx start-up). argv: [node, port, host, reply].
const ECHO_SCRIPT = `
const dgram = require("node:dgram");
const [port, host, reply] = process.argv.slice(1);
const socket = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
socket.on("message", (message, remote) => {
  process.stdout.write(JSON.stringify({ datagram: { remoteAddress: remote.address, remotePort: remote.port, payload: String(message) } }) + "\\n");
  // A reply that cannot be routed (e.g. to a spoofed source) is the client's loss, not a reason to stop.
  socket.send(reply, remote.port, remote.address, () => {});
});
socket.on("error", (error) => { process.stderr.write(String(error.stack) + "\\n"); process.exit(1); });
socket.bind(Number(port), host, () => process.stdout.write("listening " + socket.address().port + "\\n"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
`;

/**
 * Binds UDP `host:port` (default 0.0.0.0) inside `ns` and answers every datagram with `reply`;
 * resolves once bound. Killed by `stop()` or when its namespace is deleted.
 */
export async function startUdpEcho(
  ns: string,
  port: number,
  reply: string,
  options: { host?: string; readyTimeoutMs?: number } = {},
): Promise<UdpEcho> {
  assertOwnNamespace(ns);
  const subprocess = spawnIn(ns, process.execPath, ["-e", ECHO_SCRIPT, String(port), options.host ?? "0.0.0.0", reply]);
  const output = new ProcessOutput(subprocess, `udp echo in ${ns}`);
  try {
    await output.waitForLine((line) => line.startsWith("listening "), options.readyTimeoutMs ?? 10_000, '"listening"');
  } catch (error) {
    await killProcess(subprocess, "SIGKILL");
    throw error;
  }
  return {
    ns,
    port,
    reply,
    output,
    datagrams: () =>
      output.stdout.flatMap((line) => {
        if (!line.startsWith("{")) return [];
        const parsed = JSON.parse(line) as { datagram?: UdpDatagramRecord };
        return parsed.datagram === undefined ? [] : [parsed.datagram];
      }),
    stop: async () => {
      await killProcess(subprocess, "SIGTERM", 2000);
    },
  };
}
