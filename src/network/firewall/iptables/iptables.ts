import { NetworkError } from "../../model/network-error.js";
import type { NetworkObserver } from "../../model/network-observer.js";
import { CommandLauncher } from "../../kernel/command-launcher.js";
import { addsOnly, RestoreSession } from "./restore-session.js";
import { runCommand, type CommandResult } from "../../kernel/run-command.js";

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
  /**
   * Whether batches go to one long-lived iptables-restore (RestoreSession) instead of an exec
   * each. Default: when `restoreCommand --version` says nf_tables, checked at the first restore.
   */
  readonly session?: boolean;
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
 * Runs iptables-restore and iptables-save. iptables-restore, on the path of every create and
 * destroy, is never spawned from Node per call, which would fork the whole service each time.
 * With the nf_tables backend, batches that only add (see `addsOnly`) are written to one
 * long-lived iptables-restore (RestoreSession), which saves the exec too. The others, and
 * every batch with the legacy backend (whose iptables-restore holds the xtables lock for as
 * long as it runs), are exec'd by a long-lived shell (CommandLauncher). iptables-save, run by
 * reconciles only, is spawned, as it needs its stdout.
 */
export class Iptables {
  private readonly restoreCommand: string;
  private readonly saveCommand: string;
  private readonly lockWaitSeconds: number;
  private readonly lockRetries: number;
  private readonly observer: NetworkObserver;
  private readonly launcher: CommandLauncher;
  /** Whether `launcher` is ours to close: one given to us is its giver's. */
  private readonly ownsLauncher: boolean;
  /** Undefined when `session: false`; otherwise used if `useSession` says so. */
  private readonly session: RestoreSession | undefined;
  /** Whether restores go through `session`: given, or once the first restore has asked iptables. */
  private useSession: Promise<boolean> | undefined;

  constructor(options: IptablesOptions = {}) {
    this.restoreCommand = options.restoreCommand ?? "iptables-restore";
    this.saveCommand = options.saveCommand ?? "iptables-save";
    this.lockWaitSeconds = options.lockWaitSeconds ?? 5;
    this.lockRetries = options.lockRetries ?? 3;
    this.observer = options.observer ?? {};
    this.ownsLauncher = options.launcher === undefined;
    this.launcher = options.launcher ?? new CommandLauncher(options.launcherShell === undefined ? {} : { shell: options.launcherShell });
    // Created even before the backend is known, so that close() refuses later batches either
    // way; it starts no process until its first batch.
    this.session = options.session === false ? undefined : new RestoreSession({ restoreCommand: this.restoreCommand });
    if (options.session !== undefined) this.useSession = Promise.resolve(options.session);
  }

  /**
   * Applies one batch. Each table's block (`*nat` ... `COMMIT`) is one transaction, all of
   * it or none of it, but the blocks commit one after the other: when a later one fails, the
   * earlier ones stay applied (RestoreBatcher deals with that). A batch that lost the race for
   * the xtables lock (legacy backend) is retried a bounded number of times.
   *
   * Equivalent to: `iptables-restore --noflush --wait 5 < batch` (legacy backend), or the
   * batch written to a running `iptables-restore --noflush --verbose` (nf_tables, see
   * RestoreSession).
   */
  async restore(batch: string): Promise<void> {
    if (batch === "") return;
    const startedAt = performance.now();
    // Deletions are exec'd: the exiting process waits out their cleanup, not the next CREATE.
    const session = (await this.sessionInUse()) && addsOnly(batch) ? this.session : undefined;
    for (let attempt = 0; ; attempt++) {
      const args = ["--noflush", "--wait", String(this.lockWaitSeconds)];
      const result = await run(this.restoreCommand, () =>
        // The launcher ends a last line left open; a session would refuse it.
        session === undefined ? this.launcher.run(this.restoreCommand, args, batch) : session.run(batch.endsWith("\n") ? batch : `${batch}\n`),
      );
      if (result.exitCode === 0) {
        this.observer.iptablesRestore?.((performance.now() - startedAt) / 1000, true);
        return;
      }
      if (session === undefined && attempt < this.lockRetries && LOCK_CONTENTION.test(result.stderr)) continue;
      this.observer.iptablesRestore?.((performance.now() - startedAt) / 1000, false);
      throw failed(this.restoreCommand, result);
    }
  }

  /**
   * Whether restores go through the session. A failed check (iptables missing) is not kept:
   * the next restore asks again.
   *
   * Equivalent to: `iptables-restore --version | grep -q nf_tables`
   */
  private sessionInUse(): Promise<boolean> {
    if (this.session === undefined) return Promise.resolve(false);
    this.useSession ??= run(this.restoreCommand, () => runCommand(this.restoreCommand, ["--version"])).then(
      (result) => result.exitCode === 0 && result.stdout.includes("nf_tables"),
      (error: unknown) => {
        this.useSession = undefined;
        throw error;
      },
    );
    return this.useSession;
  }

  /** Equivalent to: `iptables-save` */
  async save(): Promise<string> {
    const result = await run(this.saveCommand, () => runCommand(this.saveCommand, []));
    if (result.exitCode !== 0) throw failed(this.saveCommand, result);
    return result.stdout;
  }

  /**
   * Lets a restore in progress finish, then stops the co-processes (the session's
   * iptables-restore, and the launcher's shell when it made its own). Without it they still
   * end with the service (EOF on their stdin), but only when the service exits.
   */
  async close(): Promise<void> {
    await Promise.all([this.ownsLauncher ? this.launcher.close() : undefined, this.session?.close()]);
  }
}
