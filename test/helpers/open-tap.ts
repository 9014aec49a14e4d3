/**
 * Opening and configuring a TAP fd the way Firecracker's virtio-net backend does, for
 * `tap-relay.ts` and `fleet-relay.ts`. Errors are thrown, never fatal here: the script decides
 * what a failure means for the process.
 */
import fs from "node:fs";
import { TAP_FLAGS, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_UFO, tunGetIff, tunSetIff, tunSetOffload, tunSetVnetHdrSize } from "../../src/network/kernel/tun-ioctl.mjs";

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
  const fd = fs.openSync("/dev/net/tun", fs.constants.O_RDWR);
  try {
    const attached = tunSetIff(fd, name, TAP_FLAGS);
    if (attached !== name) throw new Error(`TUNSETIFF attached to ${attached}, not ${name}`);
    configureTap(fd, options);
    return fd;
  } catch (error) {
    fs.closeSync(fd);
    throw new Error(`opening TAP ${name}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Sets the 12-byte vnet header and (unless `offload: false`) Firecracker's offloads on an
 * attached TAP fd, e.g. one inherited from a process that made the device in another namespace.
 */
export function configureTap(fd: number, options: OpenTapOptions = {}): void {
  try {
    tunSetVnetHdrSize(fd, VNET_HDR_SIZE);
    if (options.offload !== false) tunSetOffload(fd, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO);
  } catch (error) {
    throw new Error(`configuring TAP fd ${fd}: ${(error as Error).message}`, { cause: error });
  }
}

/** The current name of the device behind a TAP fd (TUNGETIFF): follows renames and netns moves. */
export function tapNameOf(fd: number): string {
  return tunGetIff(fd);
}
