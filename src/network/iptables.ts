import { NetworkError } from "./network-error.js";
import type { NetworkObserver } from "./network-observer.js";
import { CommandLauncher } from "./command-launcher.js";
import { runCommand, type CommandResult } from "./run-command.js";

export interface IptablesOptions {
  /** iptables-restore binary, e.g. "iptables-restore" or "iptables-legacy-restore". */
  readonly restoreCommand?: string;
  /** iptables-save binary matching `restoreCommand`. */
  readonly saveCommand?: string;
  /** Seconds iptables-restore waits for the xtables lock before giving up (then we retry). */
  readonly lockWaitSeconds?: number;
  /** How many times a batch that lost the race for the xtables lock is retried. */
  readonly lockRetries?: number;
  readonly observer?: NetworkObserver;
  /** Shell of the co-process that runs iptables-restore (see CommandLauncher). Default /bin/sh. */
  readonly launcherShell?: string;
  /** The co-process to run iptables-restore in, shared with other commands of the hot path; closed by `close()`. */
  readonly launcher?: CommandLauncher;
}

const LOCK_CONTENTION = /xtables lock|holding the lock|Resource temporarily unavailable/i;

function notInstalled(command: string, error: unknown): NetworkError {
  return new NetworkError("unavailable", `${command} is not installed; install the iptables package (apt-get install -y iptables)`, {
    cause: error,
  });
}

function failed(command: string, result: CommandResult): NetworkError {
  const reason = result.stderr.trim() || `exit code ${result.exitCode ?? result.signal}`;
  return new NetworkError("internal", `${command} failed: ${reason}`, { cause: result });
}

async function run(command: string, exec: () => Promise<CommandResult>): Promise<CommandResult> {
  try {
    return await exec();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw notInstalled(command, error);
    throw new NetworkError("internal", `cannot run ${command}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Runs iptables-restore and iptables-save; one exec per call. iptables-restore, on the path of
 * every create and destroy, is exec'd by a long-lived shell (CommandLauncher) rather than
 * spawned from Node, which saves the fork of the whole service each time; iptables-save, run
 * by reconciles only, is spawned, as it needs its stdout.
 */
export class Iptables {
  private readonly restoreCommand: string;
  private readonly saveCommand: string;
  private readonly lockWaitSeconds: number;
  private readonly lockRetries: number;
  private readonly observer: NetworkObserver;
  private readonly launcher: CommandLauncher;

  constructor(options: IptablesOptions = {}) {
    this.restoreCommand = options.restoreCommand ?? "iptables-restore";
    this.saveCommand = options.saveCommand ?? "iptables-save";
    this.lockWaitSeconds = options.lockWaitSeconds ?? 5;
    this.lockRetries = options.lockRetries ?? 3;
    this.observer = options.observer ?? {};
    this.launcher = options.launcher ?? new CommandLauncher(options.launcherShell === undefined ? {} : { shell: options.launcherShell });
  }

  /**
   * Applies one batch. Each table's block (`*nat` ... `COMMIT`) is one transaction, all of
   * it or none of it, but the blocks commit one after the other: when a later one fails, the
   * earlier ones stay applied (RestoreBatcher deals with that). A batch that lost the race for
   * the xtables lock (legacy backend) is retried a bounded number of times.
   *
   * Equivalent to: `iptables-restore --noflush --wait 5 < batch`
   */
  async restore(batch: string): Promise<void> {
    if (batch === "") return;
    const startedAt = performance.now();
    for (let attempt = 0; ; attempt++) {
      const args = ["--noflush", "--wait", String(this.lockWaitSeconds)];
      const result = await run(this.restoreCommand, () => this.launcher.run(this.restoreCommand, args, batch));
      if (result.exitCode === 0) {
        this.observer.iptablesRestore?.((performance.now() - startedAt) / 1000, true);
        return;
      }
      if (attempt < this.lockRetries && LOCK_CONTENTION.test(result.stderr)) continue;
      this.observer.iptablesRestore?.((performance.now() - startedAt) / 1000, false);
      throw failed(this.restoreCommand, result);
    }
  }

  /** Equivalent to: `iptables-save` */
  async save(): Promise<string> {
    const result = await run(this.saveCommand, () => runCommand(this.saveCommand, []));
    if (result.exitCode !== 0) throw failed(this.saveCommand, result);
    return result.stdout;
  }

  /**
   * Lets a restore in progress finish, then stops the co-process. Without it the co-process
   * still ends with the service (EOF on its stdin), but only when the service exits.
   */
  close(): Promise<void> {
    return this.launcher.close();
  }
}
