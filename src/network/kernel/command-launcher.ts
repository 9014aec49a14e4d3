import { randomBytes } from "node:crypto";
import { constants } from "node:os";
import { CoProcessQueue, type CoProcess, type CoProcessEnd, type CoProcessJob } from "./co-process-queue.js";
import type { CommandResult } from "./run-command.js";

export interface CommandLauncherOptions {
  /** The co-process: a POSIX shell reading commands on stdin. Default /bin/sh (dash on Debian). */
  readonly shell?: string;
  /** How long `close()` lets the shell finish before SIGKILL. Default 2000 ms. */
  readonly closeGraceMs?: number;
}

interface Request extends CoProcessJob<CommandResult> {
  readonly command: string;
  /** What the shell is given: see `requestScript`. */
  readonly script: string;
  /** Ends the line that tells the request is done. */
  readonly marker: string;
}

/** The running shell and what it has printed for the request in flight. */
interface Shell extends CoProcess {
  /** Its stdout since the request in flight was sent: the command's stderr, then our marker line. */
  output: string;
  /** The last few KB of the shell's own stderr (syntax errors, "not found"), for error messages. */
  shellErrors: string;
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
 * and the next one starts a new shell; the shell reaps its commands. Its lifetime (idle,
 * detached, closed at EOF or SIGKILLed) is CoProcessQueue's.
 */
export class CommandLauncher extends CoProcessQueue<Request, Shell> {
  private readonly nonce = randomBytes(9).toString("hex");
  private sequence = 0;

  constructor(options: CommandLauncherOptions = {}) {
    super({ command: options.shell ?? "/bin/sh", args: ["-s"], closeGraceMs: options.closeGraceMs });
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
      const marker = `${this.nonce}-${++this.sequence}`;
      let script: string;
      try {
        script = requestScript(command, args, input, marker);
      } catch (error) {
        reject(error);
        return;
      }
      this.enqueue({ command, script, marker, resolve, reject }, () => new Error(`the command launcher is closed; cannot run ${command}`));
    });
  }

  protected override attach(co: CoProcess): Shell {
    return Object.assign(co, { output: "", shellErrors: "" });
  }

  protected override start(request: Request, shell: Shell): void {
    shell.output = "";
    shell.child.stdin.write(request.script);
  }

  protected override onStdout(shell: Shell, chunk: string): void {
    shell.output += chunk;
    const request = this.jobOn(shell);
    if (request === undefined) return;
    const response = parseResponse(shell.output, request.marker);
    if (response === undefined) return;
    shell.output = "";
    const { status, stderr } = response;
    if (status === 127 || status === 126) {
      const code = status === 127 ? "ENOENT" : "EACCES";
      const why = stderr.trim() || `exit status ${status}`;
      this.settle(shell, (r) => r.reject(Object.assign(new Error(`cannot run ${r.command}: ${why}`), { code })));
      return;
    }
    this.settle(shell, (r) => r.resolve(resultOf(status, stderr)));
  }

  protected override onStderr(shell: Shell, chunk: string): void {
    shell.shellErrors = (shell.shellErrors + chunk).slice(-SHELL_ERRORS_KEPT);
  }

  protected override ended(request: Request, shell: Shell, end: CoProcessEnd): void {
    const why =
      "error" in end
        ? `failed (${end.error.message})`
        : end.signal === null
          ? `exited with code ${end.exitCode}`
          : `was killed by ${end.signal}`;
    const detail = shell.shellErrors.trim();
    request.reject(new Error(`the command launcher (${this.command}) ${why} while running ${request.command}${detail === "" ? "" : `: ${detail}`}`));
  }
}
