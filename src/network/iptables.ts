import { NetworkError } from "./network-error.js";
import type { NetworkObserver } from "./network-observer.js";
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

async function run(command: string, args: readonly string[], input?: string): Promise<CommandResult> {
  try {
    return await runCommand(command, args, input);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw notInstalled(command, error);
    throw new NetworkError("internal", `cannot run ${command}: ${(error as Error).message}`, { cause: error });
  }
}

/** Runs iptables-restore and iptables-save; one exec per call. */
export class Iptables {
  private readonly restoreCommand: string;
  private readonly saveCommand: string;
  private readonly lockWaitSeconds: number;
  private readonly lockRetries: number;
  private readonly observer: NetworkObserver;

  constructor(options: IptablesOptions = {}) {
    this.restoreCommand = options.restoreCommand ?? "iptables-restore";
    this.saveCommand = options.saveCommand ?? "iptables-save";
    this.lockWaitSeconds = options.lockWaitSeconds ?? 5;
    this.lockRetries = options.lockRetries ?? 3;
    this.observer = options.observer ?? {};
  }

  /**
   * Applies one batch atomically: the kernel sees all of it or none of it. A batch that
   * lost the race for the xtables lock (legacy backend) is retried a bounded number of times.
   *
   * Equivalent to: `iptables-restore --noflush --wait 5 < batch`
   */
  async restore(batch: string): Promise<void> {
    if (batch === "") return;
    const startedAt = performance.now();
    for (let attempt = 0; ; attempt++) {
      const result = await run(this.restoreCommand, ["--noflush", "--wait", String(this.lockWaitSeconds)], batch);
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
    const result = await run(this.saveCommand, []);
    if (result.exitCode !== 0) throw failed(this.saveCommand, result);
    return result.stdout;
  }
}
