/**
 * One-shot commands inside a benchmark namespace, tracked by the test harness so that they
 * are killed if the namespace goes away, and bounded in time.
 */
import { REPO_ROOT, spawnIn } from "../test/helpers/netns.js";

export interface RunOptions {
  readonly input?: string;
  readonly timeoutMs?: number;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** `ip netns exec <ns> file args...`, buffered; rejects on a non-zero exit, with stderr in the message. */
export async function runIn(ns: string, file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const subprocess = spawnIn(ns, file, args, {
    buffer: true,
    cwd: REPO_ROOT,
    timeout: options.timeoutMs ?? 120_000,
    maxBuffer: 256 * 2 ** 20,
    ...(options.input === undefined ? { stdin: "ignore" } : { stdin: undefined, input: options.input }),
  });
  const result = await subprocess;
  const stdout = String(result.stdout ?? "");
  const stderr = String(result.stderr ?? "");
  if (result.exitCode !== 0) {
    const why = result.timedOut ? `timed out after ${options.timeoutMs ?? 120_000} ms` : (result.signal ?? `exit code ${result.exitCode}`);
    throw new Error(`${file} ${args.join(" ")} in ${ns} failed (${why}): ${stderr.trim().split("\n").slice(-10).join("\n")}`);
  }
  return { stdout, stderr };
}
