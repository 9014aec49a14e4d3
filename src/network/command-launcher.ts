import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants } from "node:os";
import type { CommandResult } from "./run-command.js";

export interface CommandLauncherOptions {
  /** The co-process: a POSIX shell reading commands on stdin. Default /bin/sh (dash on Debian). */
  readonly shell?: string;
  /** How long `close()` lets the shell finish before SIGKILL. Default 2000 ms. */
  readonly closeGraceMs?: number;
}

interface Request {
  readonly command: string;
  readonly args: readonly string[];
  readonly input: string;
  readonly resolve: (result: CommandResult) => void;
  readonly reject: (error: unknown) => void;
}

/** The running shell and what it has printed for the request in flight. */
interface CoProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Its stdout since the request in flight was sent: the command's stderr, then our marker line. */
  output: string;
  /** The last few KB of the shell's own stderr (syntax errors, "not found"), for error messages. */
  shellErrors: string;
  /** Set on its exit: requests from then on go to a new shell. */
  exited: boolean;
  /** Resolves once it has exited (reaped by Node), or failed to start. */
  readonly gone: Promise<void>;
}

const SHELL_ERRORS_KEPT = 4096;
const signalNames = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

/** Single-quotes `word` for a POSIX shell: nothing inside is expanded. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The shell text of one request. The brace group is parsed whole before any of it runs, so a
 * request cut short (we died mid-write) is a syntax error at EOF and runs nothing. The
 * command's stdout is discarded and its stderr goes to the shell's stdout, followed by a line
 * with `marker` and the exit status: one pipe, so the status never overtakes the stderr text.
 */
export function requestScript(command: string, args: readonly string[], input: string, marker: string): string {
  const delimiter = `RIK_EOF_${marker}`;
  if (input.includes(delimiter)) throw new Error(`the input of ${command} contains the here-document delimiter ${delimiter}`);
  if (input.includes("\0")) throw new Error(`the input of ${command} contains a NUL byte, which a shell cannot pass on`);
  const body = input === "" || input.endsWith("\n") ? input : `${input}\n`;
  const words = [command, ...args].map(shellQuote).join(" ");
  return `{ ${words} 2>&1 >/dev/null <<'${delimiter}'\n${body}${delimiter}\nprintf '\\n%s %d\\n' '${marker}' "$?"; }\n`;
}

/**
 * Finds the end of a request's output in what the shell printed: the stderr text before the
 * marker line, and the status on it. Undefined until the marker line is complete.
 */
export function parseResponse(output: string, marker: string): { stderr: string; status: number } | undefined {
  const at = output.lastIndexOf(`\n${marker} `);
  if (at === -1) return undefined;
  const end = output.indexOf("\n", at + 1);
  if (end === -1) return undefined;
  const status = Number(output.slice(at + marker.length + 2, end));
  if (!Number.isInteger(status)) return undefined;
  return { stderr: output.slice(0, at), status };
}

/** A shell's `$?` as Node reports an exit: above 128 the command died of signal `$? - 128`. */
export function resultOf(status: number, stderr: string): CommandResult {
  const signal = status > 128 ? signalNames.get(status - 128) : undefined;
  return signal === undefined
    ? { exitCode: status, signal: null, stdout: "", stderr }
    : { exitCode: null, signal, stdout: "", stderr };
}

/**
 * Runs commands through one long-lived shell instead of a spawn from Node each. A spawn forks
 * the whole Node process: measured on the 2-core VM, 2-3 ms more per iptables-restore than the
 * same exec from a small shell, and 2-3.5 ms during which the event loop is blocked (the fork
 * runs on the main thread, and its cost grows with the service's RSS). The shell's fork costs
 * about 1 ms and blocks nothing here.
 *
 * One request at a time, in order; each gets its own exit status and stderr text, precisely.
 * The command's stdout is discarded (iptables-restore --noflush prints nothing on success), so
 * this is for commands whose answer is their status and stderr. If the shell dies, the request
 * in flight fails (whether its command ran is unknown, as when a spawned command is killed)
 * and the next one starts a new shell. Node reaps the shell and the shell reaps its commands,
 * so nothing is left as a zombie. The shell is unreferenced while idle, so it never keeps the
 * service alive; it exits on EOF when we close it or when our process dies, and `close()`
 * SIGKILLs it if it does not. It runs in its own session (detached), so a Ctrl-C meant for the
 * service does not kill the command of a call that the graceful shutdown lets finish.
 */
export class CommandLauncher {
  private readonly shell: string;
  private readonly closeGraceMs: number;
  private readonly nonce = randomBytes(9).toString("hex");
  private readonly queue: Request[] = [];
  /** Resolved when the queue is empty and nothing is in flight (for `close()`). */
  private idleWaiters: (() => void)[] = [];
  private current: CoProcess | undefined;
  private inFlight: Request | undefined;
  /** The shell the request in flight was written to. */
  private inFlightOn: CoProcess | undefined;
  private sequence = 0;
  private closed = false;

  constructor(options: CommandLauncherOptions = {}) {
    this.shell = options.shell ?? "/bin/sh";
    this.closeGraceMs = options.closeGraceMs ?? 2000;
  }

  /**
   * Runs `command args` with `input` on stdin; resolves with its exit code (or signal) and
   * stderr, stdout always "". Rejects with an Error whose `code` is ENOENT when the shell
   * cannot find the command (status 127), EACCES when it cannot execute it (126), and when
   * the shell itself fails or dies mid-request.
   *
   * Equivalent to: `command args... 2>&1 >/dev/null <<EOF`, then `echo $?`, typed into one
   * long-lived `sh`.
   */
  run(command: string, args: readonly string[], input = ""): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error(`the command launcher is closed; cannot run ${command}`));
        return;
      }
      this.queue.push({ command, args, input, resolve, reject });
      this.next();
    });
  }

  /** The shell's pid while one runs (for tests and diagnostics). */
  get pid(): number | undefined {
    return this.current?.exited === false ? this.current.child.pid : undefined;
  }

  /**
   * Refuses new requests, lets the queued ones finish, then closes the shell's stdin (it exits
   * at EOF) and SIGKILLs it if it is still there after the grace period.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.inFlight !== undefined || this.queue.length > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const co = this.current;
    if (co === undefined) return;
    // Referenced again, so that the process waits for the shell instead of exiting under it.
    this.setReferenced(true);
    co.child.stdin.end();
    const timer = setTimeout(() => co.child.kill("SIGKILL"), this.closeGraceMs);
    await co.gone;
    clearTimeout(timer);
  }

  private next(): void {
    if (this.inFlight !== undefined) return;
    const request = this.queue.shift();
    if (request === undefined) {
      this.setReferenced(false);
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      return;
    }
    this.inFlight = request;
    const marker = `${this.nonce}-${++this.sequence}`;
    let co: CoProcess;
    let script: string;
    try {
      script = requestScript(request.command, request.args, request.input, marker);
      co = this.coProcess();
    } catch (error) {
      this.settle((r) => r.reject(error));
      return;
    }
    co.output = "";
    this.inFlightOn = co;
    this.setReferenced(true);
    const onData = () => {
      const response = parseResponse(co.output, marker);
      if (response === undefined) return;
      co.child.stdout.off("data", onData);
      co.output = "";
      const { status, stderr } = response;
      if (status === 127 || status === 126) {
        const code = status === 127 ? "ENOENT" : "EACCES";
        const why = stderr.trim() || `exit status ${status}`;
        this.settle((r) => r.reject(Object.assign(new Error(`cannot run ${request.command}: ${why}`), { code })));
        return;
      }
      this.settle((r) => r.resolve(resultOf(status, stderr)));
    };
    co.child.stdout.on("data", onData);
    co.child.stdin.write(script);
  }

  private settle(outcome: (request: Request) => void): void {
    const request = this.inFlight;
    this.inFlight = undefined;
    this.inFlightOn = undefined;
    if (request !== undefined) outcome(request);
    this.next();
  }

  /** The live shell, started on first use and again after it died. */
  private coProcess(): CoProcess {
    if (this.current !== undefined && !this.current.exited) return this.current;
    const child = spawn(this.shell, ["-s"], { stdio: ["pipe", "pipe", "pipe"], detached: true });
    let markGone!: () => void;
    const co: CoProcess = { child, output: "", shellErrors: "", exited: false, gone: new Promise((resolve) => (markGone = resolve)) };
    this.current = co;
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => (co.output += chunk));
    child.stderr.on("data", (chunk: string) => (co.shellErrors = (co.shellErrors + chunk).slice(-SHELL_ERRORS_KEPT)));
    // EPIPE when the shell died with a request unwritten: "close" reports it.
    child.stdin.on("error", () => undefined);
    // From "exit" on, requests go to a new shell; close() needs no more than that either.
    child.on("exit", () => {
      co.exited = true;
      markGone();
    });
    let reported = false;
    const gone = (why: string) => {
      co.exited = true;
      if (reported) return;
      reported = true;
      if (this.current === co) this.current = undefined;
      markGone();
      // "close" comes after the last of stdout was read: a request whose status line made it
      // out has been settled by then, and only one that really did not finish is failed.
      if (this.inFlight === undefined || this.inFlightOn !== co) return;
      const { command } = this.inFlight;
      const detail = co.shellErrors.trim();
      this.settle((r) => r.reject(new Error(`the command launcher (${this.shell}) ${why} while running ${command}${detail === "" ? "" : `: ${detail}`}`)));
    };
    child.on("error", (error) => gone(`failed (${error.message})`));
    child.on("close", (code, signal) => gone(signal === null ? `exited with code ${code}` : `was killed by ${signal}`));
    return co;
  }

  /** Lets the service exit while the shell idles; keeps the event loop alive while a request runs. */
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
