/**
 * Opening and configuring a TAP fd the way Firecracker's virtio-net backend does, for
 * `tap-relay.ts` and `fleet-relay.ts`. Errors are thrown, never fatal here: the script decides
 * what a failure means for the process.
 */
import fs from "node:fs";
import { createRequire } from "node:module";

type Ioctl = (fd: number, request: number, arg?: number | Buffer) => number;
const ioctl = createRequire(import.meta.url)("ioctl") as Ioctl;

// <linux/if_tun.h>
const TUNSETIFF = 0x400454ca;
const TUNGETIFF = 0x800454d2;
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
export const VNET_HDR_SIZE = 12;

export interface OpenTapOptions {
  /** Firecracker-like TUNSETOFFLOAD (csum, TSO4/6, UFO). Default true. */
  readonly offload?: boolean;
}

/**
 * TUNSETIFF with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR: attaches to TAP `name`, or creates a
 * non-persistent one (gone when the fd closes) when no device has that name. Callers that
 * must attach to an existing TAP check that it exists first, as TUNSETIFF cannot say.
 * Returns a blocking fd; one read(2) returns exactly one frame, prefixed with a 12-byte
 * virtio_net_hdr.
 */
export function openTap(name: string, options: OpenTapOptions = {}): number {
  if (Buffer.byteLength(name) >= IFNAMSIZ) throw new Error(`interface name too long: ${name}`);
  const fd = fs.openSync("/dev/net/tun", fs.constants.O_RDWR);
  try {
    const ifr = Buffer.alloc(IFREQ_SIZE);
    ifr.write(name, 0, "ascii");
    ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, IFNAMSIZ);
    try {
      ioctl(fd, TUNSETIFF, ifr);
    } catch (error) {
      throw new Error(`TUNSETIFF ${name}: ${(error as Error).message}`);
    }
    const attached = ifreqName(ifr);
    if (attached !== name) throw new Error(`TUNSETIFF attached to ${attached}, not ${name}`);
    configureTap(fd, options);
    return fd;
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/**
 * Sets the 12-byte vnet header and (unless `offload: false`) Firecracker's offloads on an
 * attached TAP fd, e.g. one inherited from a process that made the device in another namespace.
 */
export function configureTap(fd: number, options: OpenTapOptions = {}): void {
  const size = Buffer.alloc(4);
  size.writeInt32LE(VNET_HDR_SIZE);
  try {
    ioctl(fd, TUNSETVNETHDRSZ, size);
    if (options.offload !== false) ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO);
  } catch (error) {
    throw new Error(`configuring TAP fd ${fd}: ${(error as Error).message}`);
  }
}

/** The current name of the device behind a TAP fd (TUNGETIFF): follows renames and netns moves. */
export function tapNameOf(fd: number): string {
  const ifr = Buffer.alloc(IFREQ_SIZE);
  ioctl(fd, TUNGETIFF, ifr);
  return ifreqName(ifr);
}

function ifreqName(ifr: Buffer): string {
  return ifr.toString("ascii", 0, IFNAMSIZ).replace(/\0.*$/s, "");
}
