/**
 * Stand-in for N VMMs' virtio-net backends at once, started by `fleet-guests.mjs` (itself in
 * the guest namespace) inside the node namespace:
 *
 *   ip netns exec NODE node --import tsx test/helpers/fleet-relay.ts --guest-ns NS --guest-fds FIRST [--no-offload] --tap TAP0 --tap TAP1 ...
 *
 * 1. Takes over the guest NICs: fd FIRST + i, inherited, is a TAP that `fleet-guests.mjs`
 *    made in the guest namespace. (A TAP is created in the namespace of the process opening
 *    /dev/net/tun; making them there saves moving each one, ~17 ms apiece.)
 * 2. Refuses to start unless every TAPi exists (TUNSETIFF would silently create a fresh one,
 *    as Firecracker's does not), then attaches to each with TUNSETIFF and
 *    IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, as Firecracker does. Both fds of a pair get the same
 *    12-byte vnet header and offloads, so frames are copied verbatim.
 * 3. Copies frames both ways for every pair and prints "ready" on stdout.
 *
 * Reads are blocking `fs.read` calls in libuv's threadpool, one per direction per pair, so
 * this must run with UV_THREADPOOL_SIZE >= 2N (+ a few for node itself), or pairs beyond the
 * pool size never get a reader. Idle, that is 2N sleeping threads and no CPU.
 *
 * Once running, a pair that breaks (its TAP deleted, e.g. by the service destroying that
 * instance) is shut down alone, with a "down <i> <reason>" line on stdout; the other pairs
 * carry on. A descriptor is closed only after no read is pending on it: closing it under a
 * pending read would let the fd number be reused and the late read land on another device.
 *
 * Exits like `tap-relay.ts`, for the same reason (threads blocked in read(2) make
 * `process.exit()` hang): by a signal with its default action — SIGTERM from the parent,
 * SIGTERM to itself when stdin ends (the parent died), SIGKILL to itself after a start-up
 * failure (reported as a "fatal: ..." line on stderr). The kernel then closes every fd: the
 * guest TAPs, being non-persistent, disappear; the service's TAPs are merely detached.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import { configureTap, openTap, tapNameOf } from "./open-tap.js";

/** Room for a 64 KiB GSO super-frame plus headers. */
const BUFFER_SIZE = 128 * 1024;
/** EBADFD: what write(2) on a TAP fd returns once its device is gone (node calls it "UNKNOWN"). */
const EBADFD = -77;

function fatal(message: string): never {
  fs.writeSync(2, `fatal: ${message}\n`);
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable");
}

function parseArgs(argv: readonly string[]) {
  const taps: string[] = [];
  let guestNs: string | undefined;
  let firstGuestFd = Number.NaN;
  let offload = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--no-offload") {
      offload = false;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) fatal(`${String(arg)} needs a value`);
    if (arg === "--tap") taps.push(value);
    else if (arg === "--guest-ns") guestNs = value;
    else if (arg === "--guest-fds") firstGuestFd = Number(value);
    else fatal(`unknown argument ${String(arg)}`);
  }
  if (guestNs === undefined) fatal("missing --guest-ns");
  if (!Number.isInteger(firstGuestFd) || firstGuestFd < 3) fatal("missing or bad --guest-fds");
  if (taps.length === 0) fatal("no --tap given");
  return { taps, guestNs, firstGuestFd, offload };
}

interface Pair {
  readonly index: number;
  readonly hostFd: number;
  readonly guestFd: number;
  /** Why the pair stopped; set once. */
  down?: string;
  /** Directions whose read loop has not ended yet. */
  running: number;
}

let dropped = 0;

function main(): void {
  const { taps, guestNs, firstGuestFd, offload } = parseArgs(process.argv.slice(2));
  for (const tap of taps) {
    if (!fs.existsSync(`/sys/class/net/${tap}`)) fatal(`TAP ${tap} does not exist in this namespace`);
  }

  // Parent gone (stdin closed) => leave. Registered first so a dying parent is never missed.
  process.stdin.on("end", () => process.kill(process.pid, "SIGTERM"));
  process.stdin.on("error", () => process.kill(process.pid, "SIGTERM"));
  process.stdin.resume();

  const pairs: Pair[] = taps.map((tap, index) => {
    const guestFd = firstGuestFd + index;
    try {
      tapNameOf(guestFd); // throws unless the inherited fd is an attached TAP
      configureTap(guestFd, { offload });
      return { index, hostFd: openTap(tap, { offload }), guestFd, running: 2 };
    } catch (error) {
      return fatal(`guest ${index} (fd ${guestFd}, TAP ${tap}): ${(error as Error).message}`);
    }
  });
  for (const pair of pairs) {
    pump(pair, "host->guest", pair.hostFd, pair.guestFd, guestNs);
    pump(pair, "guest->host", pair.guestFd, pair.hostFd, guestNs);
  }
  fs.writeSync(1, "ready\n");
}

/** Copies frames from `from` to `to` until the pair goes down. */
function pump(pair: Pair, label: string, from: number, to: number, guestNs: string): void {
  const buffer = Buffer.allocUnsafe(BUFFER_SIZE);
  const next = (): void => {
    fs.read(from, buffer, 0, buffer.length, null, (error, length) => {
      if (pair.down !== undefined) return directionEnded(pair);
      if (error !== null) {
        if (error.code === "EAGAIN" || error.code === "EINTR") return next();
        // EFAULT is what a read returns once the device was deleted.
        bringDown(pair, `${label}: read: ${error.message}`, guestNs);
        return directionEnded(pair);
      }
      if (length === 0) {
        bringDown(pair, `${label}: read returned 0`, guestNs);
        return directionEnded(pair);
      }
      try {
        fs.writeSync(to, buffer, 0, length);
      } catch (writeError) {
        if ((writeError as NodeJS.ErrnoException).errno === EBADFD) {
          bringDown(pair, `${label}: write: destination device is gone`, guestNs);
          return directionEnded(pair);
        }
        // e.g. EIO while the destination link is down: the frame is lost, as on a real NIC.
        const code = (writeError as NodeJS.ErrnoException).code;
        if (dropped++ < 10) fs.writeSync(2, `pair ${pair.index} ${label}: dropped a ${length}-byte frame: ${code}\n`);
      }
      next();
    });
  };
  next();
}

/**
 * Marks the pair down and unblocks its other direction: deleting the guest NIC ends a read
 * pending on the guest fd. A read pending on the host fd cannot be ended without deleting the
 * service's TAP, which is not ours: it ends with the next frame the node sends into it.
 */
function bringDown(pair: Pair, reason: string, guestNs: string): void {
  if (pair.down !== undefined) return;
  pair.down = reason;
  fs.writeSync(1, `down ${pair.index} ${reason}\n`);
  let guestName: string;
  try {
    guestName = tapNameOf(pair.guestFd);
  } catch {
    return; // the guest NIC is already gone
  }
  execFile("ip", ["-n", guestNs, "link", "del", "dev", guestName], () => undefined);
}

function directionEnded(pair: Pair): void {
  if (--pair.running > 0) return;
  fs.closeSync(pair.hostFd);
  fs.closeSync(pair.guestFd);
}

main();
