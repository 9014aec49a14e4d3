import { execa, type ExecaError } from "execa";
import { NetworkError } from "./network-error.js";
import type { NetworkObserver } from "./network-observer.js";

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

function failure(command: string, error: unknown): NetworkError {
  const execaError = error as ExecaError;
  if ((execaError as { code?: string }).code === "ENOENT") {
    return new NetworkError("unavailable", `${command} is not installed; install the iptables package (apt-get install -y iptables)`, {
      cause: error,
    });
  }
  const stderr = String(execaError.stderr ?? "").trim();
  return new NetworkError("internal", `${command} failed: ${stderr || execaError.shortMessage || String(error)}`, { cause: error });
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
   * Applies one batch atomically: the kernel sees all of it or none of it.
   *
   * Equivalent to: `iptables-restore --noflush --wait 5 < batch`
   */
  async restore(batch: string): Promise<void> {
    if (batch === "") return;
    const startedAt = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await execa(this.restoreCommand, ["--noflush", "--wait", String(this.lockWaitSeconds)], { input: batch });
        this.observer.iptablesRestore?.((performance.now() - startedAt) / 1000, true);
        return;
      } catch (error) {
        const stderr = String((error as ExecaError).stderr ?? "");
        if (attempt < this.lockRetries && LOCK_CONTENTION.test(stderr)) continue;
        this.observer.iptablesRestore?.((performance.now() - startedAt) / 1000, false);
        throw failure(this.restoreCommand, error);
      }
    }
  }

  /** Equivalent to: `iptables-save` */
  async save(): Promise<string> {
    try {
      return (await execa(this.saveCommand)).stdout;
    } catch (error) {
      throw failure(this.saveCommand, error);
    }
  }
}
