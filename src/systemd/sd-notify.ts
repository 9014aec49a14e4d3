import { execFile } from "node:child_process";
import { promisify } from "node:util";

// Not execa: importing it costs ~150-200 ms of CPU at every start, for one command at ready.
const execFileAsync = promisify(execFile);

export interface SdNotifyOptions {
  /** Where the environment says the service manager listens; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** The notifier; default "systemd-notify" (Debian package systemd). */
  readonly command?: string;
}

/**
 * Sends a state to the service manager, e.g. `{ READY: "1", STATUS: "serving" }`, when
 * it asked for notifications (Type=notify sets $NOTIFY_SOCKET); does nothing otherwise
 * and resolves false.
 *
 * Node cannot write unix datagrams, so this runs `systemd-notify`. Its messages come
 * from a child process, hence `NotifyAccess=all` in the unit; systemd-notify waits until
 * the manager has read them, so none is lost when it exits.
 */
export async function sdNotify(state: Readonly<Record<string, string>>, options: SdNotifyOptions = {}): Promise<boolean> {
  const env = options.env ?? process.env;
  if (env.NOTIFY_SOCKET === undefined || env.NOTIFY_SOCKET === "") return false;
  const command = options.command ?? "systemd-notify";
  const assignments = Object.entries(state).map(([key, value]) => `${key}=${value}`);
  try {
    await execFileAsync(command, assignments, { env: { ...process.env, NOTIFY_SOCKET: env.NOTIFY_SOCKET }, timeout: 10_000 });
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? "").trim();
    throw new Error(`cannot notify systemd (${command} ${assignments.join(" ")}): ${stderr || (error as Error).message}`, {
      cause: error,
    });
  }
  return true;
}
