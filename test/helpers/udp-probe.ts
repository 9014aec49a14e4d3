/**
 * A UDP client that keeps ONE socket (so one source port, so one conntrack entry on the
 * node) and sends a datagram every `intervalMs`, recording every answer. It is what makes a
 * stale conntrack entry observable: started before a port is exposed, its flow is tracked
 * with no DNAT, and it only reaches the guest later if the service flushes that entry.
 * The socket is not connected, so the ICMP port-unreachables it gets meanwhile are ignored
 * instead of ending it. Bounded in count and time: it stops by itself.
 */
import { assertOwnNamespace } from "./guest-relay.js";
import { killProcess, spawnIn } from "./netns.js";
import { ProcessOutput } from "./process-output.js";

export interface UdpAnswer {
  /** Sequence number of the last datagram sent before this answer arrived. */
  readonly afterSeq: number;
  readonly body: string;
  readonly fromAddress: string;
  readonly fromPort: number;
}

export interface UdpProbe {
  /** The probe's source port, the same for every datagram. */
  readonly localPort: number;
  /** Datagrams sent so far. */
  sent(): number;
  answers(): UdpAnswer[];
  /** Resolves once `count` datagrams more than `sent()` now have gone out. */
  waitForSends(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves with the first answer (already received or future) passing `test`. */
  waitForAnswer(test: (answer: UdpAnswer) => boolean, timeoutMs: number): Promise<UdpAnswer>;
  stop(): Promise<void>;
}

// Plain JS for `node -e`. argv: [node, host, port, intervalMs, maxCount].
const PROBE_SCRIPT = `
const dgram = require("node:dgram");
const [host, port, intervalMs, maxCount] = process.argv.slice(1);
const socket = dgram.createSocket("udp4");
let seq = 0;
socket.on("message", (message, remote) => {
  process.stdout.write(JSON.stringify({ answer: { afterSeq: seq, body: String(message), fromAddress: remote.address, fromPort: remote.port } }) + "\\n");
});
socket.on("error", (error) => { process.stderr.write(String(error.stack) + "\\n"); process.exit(1); });
socket.bind(0, "0.0.0.0", () => {
  process.stdout.write("bound " + socket.address().port + "\\n");
  const tick = () => {
    if (seq >= Number(maxCount)) process.exit(0);
    seq += 1;
    socket.send("probe " + seq, Number(port), host, () => process.stdout.write("sent " + seq + "\\n"));
  };
  tick();
  setInterval(tick, Number(intervalMs));
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
`;

/** Starts sending to `host:port` from inside `ns`; resolves once the socket is bound. */
export async function startUdpProbe(
  ns: string,
  host: string,
  port: number,
  options: { intervalMs?: number; maxCount?: number } = {},
): Promise<UdpProbe> {
  assertOwnNamespace(ns);
  const intervalMs = options.intervalMs ?? 100;
  // Default: at most 3 minutes of traffic, ava's timeout for a test.
  const maxCount = options.maxCount ?? Math.ceil(180_000 / intervalMs);
  const subprocess = spawnIn(ns, process.execPath, ["-e", PROBE_SCRIPT, host, String(port), String(intervalMs), String(maxCount)]);
  const output = new ProcessOutput(subprocess, `udp probe in ${ns}`);
  let bound: string;
  try {
    bound = await output.waitForLine((line) => line.startsWith("bound "), 10_000, '"bound"');
  } catch (error) {
    await killProcess(subprocess, "SIGKILL");
    throw error;
  }
  const sent = () => output.stdout.filter((line) => line.startsWith("sent ")).length;
  const parseAnswer = (line: string): UdpAnswer | undefined =>
    line.startsWith("{") ? (JSON.parse(line) as { answer?: UdpAnswer }).answer : undefined;
  return {
    localPort: Number(bound.split(" ")[1]),
    sent,
    answers: () => output.stdout.flatMap((line) => parseAnswer(line) ?? []),
    waitForSends: async (count, timeoutMs = 10_000) => {
      const target = sent() + count;
      await output.waitForLine((line) => line === `sent ${target}`, timeoutMs, `"sent ${target}"`);
    },
    waitForAnswer: async (test, timeoutMs) => {
      const line = await output.waitForLine(
        (text) => {
          const answer = parseAnswer(text);
          return answer !== undefined && test(answer);
        },
        timeoutMs,
        "matching answer",
      );
      return parseAnswer(line)!;
    },
    stop: async () => {
      await killProcess(subprocess, "SIGTERM", 2000);
    },
  };
}
