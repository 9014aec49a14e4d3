/**
 * The `rik-network` command line as an operator runs it: `node --import tsx src/main.ts
 * ARGS...` in one of the test's namespaces, optionally as the unprivileged user `nobody`.
 */
import path from "node:path";
import { execIn, killProcess, REPO_ROOT, spawnIn, type NsProcess } from "./netns.js";
import { ProcessOutput } from "./process-output.js";

const MAIN = path.join(REPO_ROOT, "src", "main.ts");

export interface CliRunOptions {
  /** Run as nobody:nogroup without supplementary groups (setpriv), instead of root. */
  readonly asNobody?: boolean;
  /** Written to the command's standard input. */
  readonly input?: string;
  readonly timeoutMs?: number;
}

export interface CliResult {
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

function command(args: readonly string[], asNobody: boolean): [string, string[]] {
  const node = [process.execPath, "--import", "tsx", MAIN, ...args];
  if (!asNobody) return [node[0]!, node.slice(1)];
  return ["setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", ...node]];
}

/** Runs one command to its end inside `ns`; never rejects on a non-zero exit. */
export async function runCli(ns: string, args: readonly string[], options: CliRunOptions = {}): Promise<CliResult> {
  const [file, fileArgs] = command(args, options.asNobody === true);
  const result = await execIn(ns, file, fileArgs, {
    cwd: REPO_ROOT,
    reject: false,
    stripFinalNewline: false,
    timeout: options.timeoutMs ?? 30_000,
    ...(options.input === undefined ? { stdin: "ignore" } : { input: options.input }),
  });
  return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
}

export interface CliProcess {
  readonly output: ProcessOutput;
  readonly subprocess: NsProcess;
  /** Sends `signal` (default SIGINT, as Ctrl-C does) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | undefined>;
}

/** Starts a long-running command (watch) inside `ns`; it is killed with its namespace at the latest. */
export function startCli(ns: string, args: readonly string[]): CliProcess {
  const [file, fileArgs] = command(args, false);
  const subprocess = spawnIn(ns, file, fileArgs, { cwd: REPO_ROOT });
  const output = new ProcessOutput(subprocess, `rik-network ${args[0] ?? ""}`);
  return {
    output,
    subprocess,
    stop: async (signal = "SIGINT") => {
      await killProcess(subprocess, signal, 5000);
      await output.closed;
      return subprocess.exitCode ?? undefined;
    },
  };
}
