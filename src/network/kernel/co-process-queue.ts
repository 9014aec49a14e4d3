import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";

/** A long-lived child, as spawned: the subclass adds what it tracks of its output. */
export interface CoProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Set on its exit: jobs from then on go to a new process. */
  exited: boolean;
  /** Resolves once it has exited (reaped by Node), or failed to start. */
  readonly gone: Promise<void>;
}

/** How a co-process ended: it could not be started, or it exited (its output all read). */
export type CoProcessEnd =
  | { readonly error: NodeJS.ErrnoException }
  | { readonly exitCode: number | null; readonly signal: NodeJS.Signals | null };

/** A job of the queue: settled once, by the subclass or, if it cannot be started, here. */
export interface CoProcessJob<Result> {
  readonly resolve: (result: Result) => void;
  readonly reject: (error: unknown) => void;
}

export interface CoProcessQueueOptions {
  /** The co-process: `command args...`, reading its jobs on stdin. */
  readonly command: string;
  readonly args: readonly string[];
  /** How long `close()` lets it finish before SIGKILL. Default 2000 ms. */
  readonly closeGraceMs?: number;
}

/**
 * Jobs written one at a time, in order, to one long-lived child process instead of a spawn
 * each: a spawn forks the whole Node process (see CommandLauncher), and the command's start
 * is paid once. The subclass writes a job and tells from the child's output when it is done.
 *
 * If the child exits, the job in flight is handed to `ended` (whether it ran is the
 * subclass's call) and the next job starts a new child. Node reaps the child, so nothing is
 * left as a zombie. The child is unreferenced while idle, so it never keeps the service alive;
 * it gets EOF on stdin when we close it or when our process dies, and `close()` SIGKILLs it if
 * it does not exit then. It runs in its own session (detached), so a Ctrl-C meant for the
 * service does not kill it under a job that the graceful shutdown lets finish.
 */
export abstract class CoProcessQueue<Job extends Pick<CoProcessJob<unknown>, "reject">, P extends CoProcess> {
  /** The co-process's command, e.g. for error messages. */
  protected readonly command: string;
  private readonly args: readonly string[];
  private readonly closeGraceMs: number;
  private readonly queue: Job[] = [];
  /** Resolved when the queue is empty and nothing is in flight (for `close()`). */
  private idleWaiters: (() => void)[] = [];
  private current: P | undefined;
  private inFlight: { readonly job: Job; readonly on: P } | undefined;
  private closed = false;

  constructor(options: CoProcessQueueOptions) {
    this.command = options.command;
    this.args = options.args;
    this.closeGraceMs = options.closeGraceMs ?? 2000;
  }

  /** Adds the subclass's fields to a child just spawned; returns the same object. */
  protected abstract attach(co: CoProcess): P;
  /** Writes `job` to `co`; the job is in flight on `co` until `settle(co, ...)`. */
  protected abstract start(job: Job, co: P): void;
  protected abstract onStdout(co: P, chunk: string): void;
  protected abstract onStderr(co: P, chunk: string): void;
  /** `co` ended with `job` in flight on it: settles the job. */
  protected abstract ended(job: Job, co: P, end: CoProcessEnd): void;

  /** The child's pid while one runs (for tests and diagnostics). */
  get pid(): number | undefined {
    return this.current?.exited === false ? this.current.child.pid : undefined;
  }

  /**
   * Refuses new jobs, lets the queued ones finish, then closes the child's stdin (it exits at
   * EOF) and SIGKILLs it if it is still there after the grace period.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.inFlight !== undefined || this.queue.length > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const co = this.current;
    if (co === undefined) return;
    // Referenced again, so that the service waits for the child instead of exiting under it.
    this.setReferenced(true);
    co.child.stdin.end();
    const timer = setTimeout(() => co.child.kill("SIGKILL"), this.closeGraceMs);
    await co.gone;
    clearTimeout(timer);
  }

  /** Queues `job`, or rejects it with `closedError()` once `close()` was called. */
  protected enqueue(job: Job, closedError: () => Error): void {
    if (this.closed) {
      job.reject(closedError());
      return;
    }
    this.queue.push(job);
    this.next();
  }

  /** The job in flight on `co`, if any. */
  protected jobOn(co: P): Job | undefined {
    return this.inFlight?.on === co ? this.inFlight.job : undefined;
  }

  /** Settles the job in flight on `co` (if one is) and starts the next. */
  protected settle(co: P, outcome: (job: Job) => void): void {
    const inFlight = this.inFlight;
    if (inFlight?.on !== co) return;
    this.inFlight = undefined;
    outcome(inFlight.job);
    this.next();
  }

  private next(): void {
    if (this.inFlight !== undefined) return;
    const job = this.queue.shift();
    if (job === undefined) {
      this.setReferenced(false);
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      return;
    }
    let co: P;
    try {
      co = this.live();
    } catch (error) {
      job.reject(error);
      this.next();
      return;
    }
    this.inFlight = { job, on: co };
    this.setReferenced(true);
    this.start(job, co);
  }

  /** The live child, started on first use and again after it exited. */
  private live(): P {
    if (this.current !== undefined && !this.current.exited) return this.current;
    const child = spawn(this.command, this.args, { stdio: ["pipe", "pipe", "pipe"], detached: true });
    let markGone!: () => void;
    const co = this.attach({ child, exited: false, gone: new Promise((resolve) => (markGone = resolve)) });
    this.current = co;
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => this.onStdout(co, chunk));
    child.stderr.on("data", (chunk: string) => this.onStderr(co, chunk));
    // EPIPE when the child exited with a job unwritten: "close" reports the exit.
    child.stdin.on("error", () => undefined);
    // From "exit" on, jobs go to a new child; close() needs no more than that either.
    child.on("exit", () => {
      co.exited = true;
      markGone();
    });
    let reported = false;
    const end = (how: CoProcessEnd) => {
      co.exited = true;
      if (reported) return;
      reported = true;
      if (this.current === co) this.current = undefined;
      markGone();
      this.settle(co, (job) => this.ended(job, co, how));
    };
    child.on("error", (error) => end({ error }));
    // "close" comes after the last of stdout and stderr was read: a job whose answer made it
    // out has been settled by then, and only one that really did not finish is left.
    child.on("close", (exitCode, signal) => end({ exitCode, signal }));
    return co;
  }

  /** Lets the service exit while the child idles; keeps the event loop alive while a job runs. */
  private setReferenced(referenced: boolean): void {
    const co = this.current;
    if (co === undefined) return;
    for (const handle of [co.child, co.child.stdin, co.child.stdout, co.child.stderr]) {
      const target = handle as unknown as { ref?: () => void; unref?: () => void };
      if (referenced) target.ref?.();
      else target.unref?.();
    }
  }
}
