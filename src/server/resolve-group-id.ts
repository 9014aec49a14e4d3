import { execa } from "execa";

/**
 * The gid of a group name (through NSS, as `getent group` sees it, so LDAP or sssd
 * groups work too), or of a numeric id as given. Throws a message saying what to fix.
 */
export async function resolveGroupId(group: string): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const result = await execa("getent", ["group", group], { reject: false });
  if (result.failed && (result as { code?: string }).code === "ENOENT") {
    throw new Error(`cannot look group "${group}" up: getent is not installed (Debian package libc-bin)`);
  }
  const gid = Number(String(result.stdout).split(":")[2]);
  if (result.exitCode !== 0 || !Number.isInteger(gid)) {
    throw new Error(`group "${group}" does not exist; create it (groupadd ${group}) or fix --socket-group`);
  }
  return gid;
}
