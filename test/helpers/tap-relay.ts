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
import { createRequire } from "node:module";

type Ioctl = (fd: number, request: number, arg?: number | Buffer) => number;
const ioctl = createRequire(import.meta.url)("ioctl") as Ioctl;

// <linux/if_tun.h>
const TUNSETIFF = 0x400454ca;
const TUNSETOFFLOAD = 0x400454d0;
const TUNSETVNETHDRSZ = 0x400454d8;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
const TUN_F_UFO = 0x10;
/** sizeof(struct ifreq) on 64-bit Linux; the name is the first IFNAMSIZ (16) bytes. */
const IFREQ_SIZE = 40;
const IFNAMSIZ = 16;
/** sizeof(struct virtio_net_hdr_v1), what Firecracker sets. */
const VNET_HDR_SIZE = 12;
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

/** TUNSETIFF: attaches to TAP `name`, or creates a non-persistent one when it does not exist. */
function openTap(name: string, offload: boolean): number {
  if (Buffer.byteLength(name) >= IFNAMSIZ) fatal(`interface name too long: ${name}`);
  const fd = fs.openSync("/dev/net/tun", fs.constants.O_RDWR);
  const ifr = Buffer.alloc(IFREQ_SIZE);
  ifr.write(name, 0, "ascii");
  ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, IFNAMSIZ);
  try {
    ioctl(fd, TUNSETIFF, ifr);
  } catch (error) {
    fatal(`TUNSETIFF ${name}: ${(error as Error).message}`);
  }
  const attached = ifr.toString("ascii", 0, IFNAMSIZ).replace(/\0.*$/s, "");
  if (attached !== name) fatal(`TUNSETIFF attached to ${attached}, not ${name}`);
  const size = Buffer.alloc(4);
  size.writeInt32LE(VNET_HDR_SIZE);
  try {
    ioctl(fd, TUNSETVNETHDRSZ, size);
    if (offload) ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO);
  } catch (error) {
    fatal(`configuring ${name}: ${(error as Error).message}`);
  }
  return fd;
}

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
        const code = (writeError as NodeJS.ErrnoException).code;
        if (code === "EBADFD" || code === "EBADF") fatal(`${label}: write: ${(writeError as Error).message}`);
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

  const hostFd = openTap(tap, offload);
  const guestFd = openTap(guestTap, offload);
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
