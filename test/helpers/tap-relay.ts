/**
 * Stand-in for a VMM's virtio-net backend, run by `guest-relay.ts` inside the node namespace:
 *
 *   node --import tsx test/helpers/tap-relay.ts --tap TAP --guest-tap gXXXX --guest-ns NS [--no-offload]
 *
 * 1. Opens /dev/net/tun and attaches to the EXISTING TAP with TUNSETIFF and
 *    IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, sets a 12-byte vnet header and the same offloads as
 *    Firecracker (TUNSETVNETHDRSZ, TUNSETOFFLOAD).
 * 2. Creates a second, non-persistent TAP with the same flags (the "guest NIC") and moves it
 *    into the guest namespace; the open descriptor stays attached to it.
 * 3. Copies frames both ways. Both descriptors use the same vnet header size and offloads,
 *    so each frame (virtio_net_hdr + Ethernet frame, possibly a GSO super-frame) is copied
 *    verbatim. A read on a tun fd returns exactly one frame.
 * 4. Prints "ready" on stdout.
 *
 * Reads are blocking `fs.read` calls in libuv's threadpool, one per direction: no polling, no
 * CPU spent while idle. A thread blocked in read(2) cannot be interrupted, and node's
 * `process.exit()` joins the threadpool at exit and would hang, so every way out of this
 * process is a signal with its default action: SIGTERM from the parent, SIGTERM to itself when
 * stdin ends (the parent died), and SIGKILL to itself after a fatal error (reported on stderr
 * as a line starting with "fatal:"). The kernel then closes both fds: the guest TAP, being
 * non-persistent, disappears; the service's persistent TAP is merely detached.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { openTap } from "./open-tap.js";

/** Room for a 64 KiB GSO super-frame plus headers. */
const BUFFER_SIZE = 128 * 1024;

function fatal(message: string): never {
  fs.writeSync(2, `fatal: ${message}\n`);
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable");
}

function parseArgs(argv: readonly string[]) {
  const values = new Map<string, string>();
  let offload = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--no-offload") {
      offload = false;
    } else if (arg === "--tap" || arg === "--guest-tap" || arg === "--guest-ns") {
      const value = argv[++i];
      if (value === undefined) fatal(`${arg} needs a value`);
      values.set(arg, value);
    } else {
      fatal(`unknown argument ${String(arg)}`);
    }
  }
  const get = (name: string) => values.get(name) ?? fatal(`missing ${name}`);
  return { tap: get("--tap"), guestTap: get("--guest-tap"), guestNs: get("--guest-ns"), offload };
}

/** `openTap`, with any failure fatal. */
function openTapOrDie(name: string, offload: boolean): number {
  try {
    return openTap(name, { offload });
  } catch (error) {
    return fatal(`opening TAP ${name}: ${(error as Error).message}`);
  }
}

/** EBADFD: what write(2) on a TAP fd returns once its device is gone (node calls it "UNKNOWN"). */
const EBADFD = -77;

let dropped = 0;

/** Copies frames from `from` to `to`, forever. */
function pump(label: string, from: number, to: number): void {
  const buffer = Buffer.allocUnsafe(BUFFER_SIZE);
  const next = (): void => {
    fs.read(from, buffer, 0, buffer.length, null, (error, length) => {
      if (error !== null) {
        if (error.code === "EAGAIN" || error.code === "EINTR") return next();
        fatal(`${label}: read: ${error.message}`);
      }
      if (length === 0) fatal(`${label}: read returned 0 (device gone?)`);
      try {
        fs.writeSync(to, buffer, 0, length);
      } catch (writeError) {
        const { code, errno } = writeError as NodeJS.ErrnoException;
        if (code === "EBADFD" || errno === EBADFD || code === "EBADF") fatal(`${label}: write: ${(writeError as Error).message}`);
        // e.g. EIO while the destination link is down: the frame is lost, as on a real NIC.
        if (dropped++ < 10) fs.writeSync(2, `${label}: dropped a ${length}-byte frame: ${code}\n`);
      }
      next();
    });
  };
  next();
}

function main(): void {
  const { tap, guestTap, guestNs, offload } = parseArgs(process.argv.slice(2));
  // TUNSETIFF would silently create a fresh TAP: insist on the service's existing one.
  if (!fs.existsSync(`/sys/class/net/${tap}`)) fatal(`TAP ${tap} does not exist in this namespace`);
  if (fs.existsSync(`/sys/class/net/${guestTap}`)) fatal(`${guestTap} already exists`);

  // Parent gone (stdin closed) => leave. Registered first so a dying parent is never missed.
  process.stdin.on("end", () => process.kill(process.pid, "SIGTERM"));
  process.stdin.on("error", () => process.kill(process.pid, "SIGTERM"));
  process.stdin.resume();

  const hostFd = openTapOrDie(tap, offload);
  const guestFd = openTapOrDie(guestTap, offload);
  try {
    execFileSync("ip", ["link", "set", "dev", guestTap, "netns", guestNs], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    fatal(`moving ${guestTap} to ${guestNs}: ${String((error as { stderr?: Buffer }).stderr ?? error)}`);
  }
  pump("host->guest", hostFd, guestFd);
  pump("guest->host", guestFd, hostFd);
  fs.writeSync(1, "ready\n");
}

main();
