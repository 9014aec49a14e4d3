/**
 * A hostile guest: frame-injector.ts attached to a TAP in the node namespace. It writes raw
 * Ethernet frames of its choosing (spoofed sources, router advertisements...) and records the
 * IPv6 frames the node sends back. Stopped with its namespace.
 */
import { fileURLToPath } from "node:url";
import { killProcess, REPO_ROOT, spawnIn, type NsProcess } from "./netns.js";
import { parseIpv6Frame, type ReceivedIpv6 } from "./ipv6-frames.js";
import { ProcessOutput } from "./process-output.js";

const INJECTOR_SCRIPT = fileURLToPath(new URL("./frame-injector.ts", import.meta.url));

export interface HostileGuest {
  readonly tapName: string;
  /** The MAC it writes frames from. */
  readonly mac: string;
  /** Writes `frame` to the TAP; resolves once written. */
  send(frame: Buffer): Promise<void>;
  /** The IPv6 frames the node sent to this TAP so far. */
  received(): ReceivedIpv6[];
  stop(): Promise<void>;
}

export async function attachHostileGuest(nodeNs: string, tapName: string, mac: string): Promise<HostileGuest> {
  const subprocess: NsProcess = spawnIn(nodeNs, process.execPath, ["--import", "tsx", INJECTOR_SCRIPT, "--tap", tapName], { cwd: REPO_ROOT });
  const output = new ProcessOutput(subprocess, `frame injector on ${tapName}`);
  await output.waitForLine((line) => line === "ready", 15_000, '"ready"');
  let sent = 0;
  return {
    tapName,
    mac,
    async send(frame) {
      sent++;
      const done = sent;
      subprocess.stdin!.write(`${frame.toString("hex")}\n`);
      await output.waitForLine(() => output.stdout.filter((line) => line === "wrote" || line.startsWith("failed ")).length >= done, 5000, `frame ${done} written`);
      const failure = output.stdout.filter((line) => line === "wrote" || line.startsWith("failed "))[done - 1];
      if (failure !== "wrote") throw new Error(`writing a frame to ${tapName}: ${failure}`);
    },
    received: () => output.stdout.flatMap((line) => (line.startsWith("frame ") ? [parseIpv6Frame(Buffer.from(line.slice(6), "hex"))!].filter(Boolean) : [])),
    stop: async () => {
      await killProcess(subprocess, "SIGTERM", 2000);
    },
  };
}
