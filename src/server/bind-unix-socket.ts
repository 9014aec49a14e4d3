import * as grpc from "@grpc/grpc-js";
import { chmod, chown, lstat, mkdir, rm } from "node:fs/promises";
import { connect } from "node:net";
import { dirname } from "node:path";
import { bindAsync } from "./bind-async.js";

/** How long a live server may take to accept a probe connection on an existing socket. */
const probeTimeoutMs = 1000;

/** A group granted the socket (mode 0660), resolved beforehand with `resolveGroupId`. */
export interface SocketGroup {
  readonly name: string;
  readonly gid: number;
}

/**
 * Binds `server` (insecure credentials) to `unix:<socketPath>` with mode 0600: whoever
 * can connect can rewire the node's network, so only root may. With `group`, the
 * socket is given to that group with mode 0660 instead. Creates the parent directory
 * (0755) if missing, replaces a stale socket left by a crash, and refuses a path that
 * a live server still holds or that is not a socket.
 */
export async function bindUnixSocket(server: grpc.Server, socketPath: string, group?: SocketGroup): Promise<void> {
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o755 });
  await claimSocketPath(socketPath);
  // The umask makes the socket 0600 from the moment it exists; the chmod is what
  // guarantees it. The umask is process-wide, hence restored as soon as bind returns.
  const previousUmask = process.umask(0o177);
  try {
    await bindAsync(server, `unix:${socketPath}`, grpc.ServerCredentials.createInsecure());
  } finally {
    process.umask(previousUmask);
  }
  if (group === undefined) {
    await chmod(socketPath, 0o600);
    return;
  }
  // Owner and group only: the socket was created 0600, so nobody else got in meanwhile.
  await chown(socketPath, -1, group.gid).catch((error: NodeJS.ErrnoException) => {
    throw new Error(
      `cannot give ${socketPath} to group ${group.name}: ${error.message}` +
        (error.code === "EPERM" ? " (without CAP_CHOWN the service must be a member: SupplementaryGroups= in its unit)" : ""),
      { cause: error },
    );
  });
  await chmod(socketPath, 0o660);
}

/** Refuses a path held by a live server or by something that is not a socket; removes a stale socket. */
export async function claimSocketPath(socketPath: string): Promise<void> {
  const stats = await lstat(socketPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (stats === undefined) return;
  if (!stats.isSocket()) {
    throw new Error(`${socketPath} exists and is not a socket; remove it or pass --socket`);
  }
  if (await isServing(socketPath)) {
    throw new Error(`another rik-network is already serving on ${socketPath}; stop it or pass --socket`);
  }
  await rm(socketPath, { force: true });
}

/** False for a stale socket (nobody listening); a probe that hangs counts as serving, to never remove a live socket. */
function isServing(socketPath: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = connect(socketPath);
    const settle = (serving: boolean): void => {
      probe.destroy();
      resolve(serving);
    };
    probe.setTimeout(probeTimeoutMs, () => settle(true));
    probe.once("connect", () => settle(true));
    probe.once("error", (error: NodeJS.ErrnoException) => {
      probe.destroy();
      if (error.code === "ECONNREFUSED" || error.code === "ENOENT") {
        resolve(false);
      } else {
        reject(new Error(`cannot tell whether ${socketPath} is in use: ${error.message}`, { cause: error }));
      }
    });
  });
}
