import type { CommandLauncher } from "./command-launcher.js";
import type { Protocol } from "../model/instance-network.js";
import { NetworkError } from "../model/network-error.js";
import { runCommand, type CommandResult } from "./run-command.js";

/** What conntrack prints when the filter matched no flow; it exits 1 then, which is not a failure for us. */
const NOTHING_DELETED = /\b0 flow entries have been deleted/;

export interface ConntrackFilter {
  readonly protocol: Protocol;
  /** Destination port of the flow as its first packet had it, i.e. the host port before any DNAT. */
  readonly port: number;
  /** Destination address of the flow before any DNAT; every address when absent. */
  readonly address?: string;
}

/**
 * Runs the conntrack tool. Deletions, on the path of UDP creates and destroys, go through the
 * long-lived shell shared with iptables-restore's execs on the legacy backend (CommandLauncher):
 * a spawn from Node would fork the whole service and block its event loop for milliseconds.
 */
export class Conntrack {
  private readonly launcher: Pick<CommandLauncher, "run">;

  constructor(launcher: Pick<CommandLauncher, "run">) {
    this.launcher = launcher;
  }

  /**
   * Deletes the conntrack entries of flows to a host port. A UDP client that sent before the
   * DNAT existed has an entry that bypasses the nat table for as long as it keeps sending;
   * after a DESTROY, its entry still points at the gone guest. Returns how many were deleted.
   *
   * Equivalent to: `conntrack -D -p udp --orig-port-dst $port [--orig-dst $address]`
   */
  async delete(filter: ConntrackFilter): Promise<number> {
    const args = ["-D", "-p", filter.protocol, "--orig-port-dst", String(filter.port)];
    if (filter.address !== undefined) args.push("--orig-dst", filter.address);
    let result: CommandResult;
    try {
      result = await this.launcher.run("conntrack", args);
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
      throw new NetworkError(
        missing ? "unavailable" : "internal",
        missing ? "conntrack is not installed; install it (apt-get install -y conntrack)" : `cannot run conntrack: ${(error as Error).message}`,
        { cause: error },
      );
    }
    // The summary goes to stderr; the launcher keeps stderr and drops stdout.
    const output = result.stderr + result.stdout;
    if (result.exitCode === 0 || NOTHING_DELETED.test(output)) return Number(/(\d+) flow entries have been deleted/.exec(output)?.[1] ?? 0);
    throw new NetworkError("internal", `conntrack ${args.join(" ")} failed: ${result.stderr.trim() || `exit code ${result.exitCode}`}`, {
      cause: result,
    });
  }

  /**
   * Checks that the conntrack tool runs, so that a node without it fails at start rather
   * than at its first UDP exposure. Spawned: it runs once, and needs stdout.
   *
   * Equivalent to: `conntrack --version`
   */
  async available(): Promise<void> {
    try {
      const result = await runCommand("conntrack", ["--version"]);
      if (result.exitCode === 0) return;
      throw new Error(result.stderr.trim() || `exit code ${result.exitCode}`);
    } catch (error) {
      throw new NetworkError(
        "failed-precondition",
        `conntrack is needed to flush stale UDP flows but does not run (${(error as Error).message}); install it (apt-get install -y conntrack)`,
        { cause: error },
      );
    }
  }
}
