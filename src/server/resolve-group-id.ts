import { execFile } from "node:child_process";
import { promisify } from "node:util";

// Not execa: importing it costs ~150-200 ms of CPU at every start of the service.
const execFileAsync = promisify(execFile);

/**
 * The gid of a group name (through NSS, as `getent group` sees it, so LDAP or sssd
 * groups work too), or of a numeric id as given. Throws a message saying what to fix.
 */
export async function resolveGroupId(group: string): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  let stdout = "";
  try {
    ({ stdout } = await execFileAsync("getent", ["group", group]));
  } catch (error) {
    // A non-zero exit (no such group) leaves stdout empty, so the check below refuses it.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(`cannot look group "${group}" up: getent is not installed (Debian package libc-bin)`);
    }
  }
  const gid = Number(stdout.split(":")[2]);
  if (!Number.isInteger(gid)) {
    throw new Error(`group "${group}" does not exist; create it (groupadd ${group}) or fix --socket-group`);
  }
  return gid;
}
