import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import type { NsProcess } from "./netns.js";

type Waiter = {
  readonly test: (line: string) => boolean;
  readonly resolve: (line: string) => void;
};

/**
 * Collects a subprocess's stdout and stderr as lines (kept in full, tests are short) and lets
 * a caller wait for a line, failing fast — with the output's tail in the error — when the
 * process exits first or the wait times out.
 */
export class ProcessOutput {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  private readonly waiters = new Set<Waiter>();
  /** Why the process never ran (e.g. spawn E2BIG), when that is what happened. */
  private failure: string | undefined;
  private readonly lineListeners = new Set<(line: string) => void>();
  /** Resolves when the process has exited and both streams are drained. */
  readonly closed: Promise<void>;

  constructor(
    readonly subprocess: NsProcess,
    readonly name: string,
  ) {
    const drained = [this.read(subprocess.stdout, this.stdout, true), this.read(subprocess.stderr, this.stderr, false)];
    const result = subprocess.then((value) => {
      this.failure = value.exitCode === undefined && value.signal === undefined ? value.shortMessage : undefined;
    });
    this.closed = Promise.all([result, ...drained]).then(() => undefined);
  }

  private read(stream: Readable | null, into: string[], notify: boolean): Promise<void> {
    if (stream === null) return Promise.resolve();
    return new Promise((resolve) => {
      const reader = createInterface({ input: stream, crlfDelay: Infinity });
      reader.on("line", (line) => {
        into.push(line);
        if (!notify) return;
        for (const listener of this.lineListeners) listener(line);
        for (const waiter of this.waiters) {
          if (waiter.test(line)) {
            this.waiters.delete(waiter);
            waiter.resolve(line);
          }
        }
      });
      reader.on("close", () => resolve());
    });
  }

  /** Calls `listener` for every future stdout line. Returns the unsubscribe function. */
  onLine(listener: (line: string) => void): () => void {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  /** The last `count` lines of stdout and stderr, for error messages. */
  tail(count = 30): string {
    const part = (label: string, lines: string[]) =>
      lines.length === 0 ? `${label}: (empty)` : `${label} (last ${Math.min(count, lines.length)} lines):\n${lines.slice(-count).join("\n")}`;
    return `${part("stdout", this.stdout)}\n${part("stderr", this.stderr)}`;
  }

  describeExit(): string {
    const { exitCode, signalCode } = this.subprocess;
    if (signalCode !== null) return `killed by ${signalCode}`;
    if (exitCode !== null) return `exited with code ${exitCode}`;
    return `failed to run (${this.failure ?? "unknown error"})`;
  }

  /**
   * Resolves with the first stdout line (already seen or future) passing `test`. Rejects when
   * `timeoutMs` passes or the process ends first.
   */
  waitForLine(test: (line: string) => boolean, timeoutMs: number, what = "the expected line"): Promise<string> {
    const seen = this.stdout.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | undefined, line?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        if (error !== undefined) reject(error);
        else resolve(line as string);
      };
      const waiter: Waiter = { test, resolve: (line) => finish(undefined, line) };
      this.waiters.add(waiter);
      const timer = setTimeout(
        () => finish(new Error(`${this.name}: no ${what} within ${timeoutMs} ms\n${this.tail()}`)),
        timeoutMs,
      );
      void this.closed.then(() =>
        finish(new Error(`${this.name} ${this.describeExit()} before printing ${what}\n${this.tail()}`)),
      );
    });
  }
}
