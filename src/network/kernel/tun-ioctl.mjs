/**
 * The TUN driver's ioctls (<linux/if_tun.h>), through libc's ioctl(2) called by koffi: an
 * FFI with prebuilt binaries, so a node needs no compiler to install it, and it loads in
 * any number of threads.
 *
 * Plain JavaScript, typed by JSDoc and checked by tsc (checkJs), because code that cannot
 * load TypeScript uses it too: TapCreator's worker thread, which tsx's loader does not
 * reach on Node 20, and the test scripts that run as plain `node`, some as an unprivileged
 * user.
 */
import { getSystemErrorMap } from "node:util";
import koffi from "koffi";


export const TUNSETIFF = 0x400454ca;
export const TUNSETPERSIST = 0x400454cb;
export const TUNSETOWNER = 0x400454cc;
export const TUNSETGROUP = 0x400454ce;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const TUNGETIFF = 0x800454d2;
export const TUNSETTXFILTER = 0x400454d1;
export const TUNSETSNDBUF = 0x400454d4;
/** _IOW('T', 214, struct sock_fprog): 16 bytes on 64-bit Linux. */
export const TUNDETACHFILTER = 0x401054d6;
export const TUNGETVNETHDRSZ = 0x800454d7;
export const TUNSETVNETLE = 0x400454dc;
export const TUNGETVNETLE = 0x800454dd;
export const TUNSETVNETBE = 0x400454de;
export const TUNSETSTEERINGEBPF = 0x800454e0;
export const TUNSETFILTEREBPF = 0x800454e1;
export const TUNSETCARRIER = 0x400454e2;
/** sizeof(struct virtio_net_hdr): what the kernel gives a new TUN/TAP. */
export const DEFAULT_VNET_HDR_SIZE = 10;
/** INT_MAX: the send buffer of a new TUN/TAP's queues. */
const DEFAULT_SNDBUF = 0x7fffffff;
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
/** The flags Firecracker opens its TAP with. */
export const TAP_FLAGS = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_UFO = 0x10;
/** An interface name holds at most IFNAMSIZ - 1 bytes, then a NUL. */
export const IFNAMSIZ = 16;
/** sizeof(struct ifreq) on 64-bit Linux: the name, then the union whose first member is the flags. */
const IFREQ_SIZE = 40;

const libc = koffi.load("libc.so.6");
/** Variadic as in <sys/ioctl.h>: each call says whether its argument is a pointer or a value. */
const ioctlCall = libc.func("int ioctl(int fd, unsigned long request, ...)");

/**
 * An ioctl failure: `code` is the errno's name (EPERM, EINVAL...), as in Node's own system errors.
 */
export class IoctlError extends Error {
  /**
   * @param {string} request the request's name, e.g. TUNSETIFF
   * @param {number} errno
   */
  constructor(request, errno) {
    const [code, description] = getSystemErrorMap().get(-errno) ?? [`errno ${errno}`, "unknown error"];
    super(`${request}: ${code} (${description})`);
    this.name = "IoctlError";
    /** @readonly */
    this.code = code;
    /** @readonly */
    this.errno = errno;
    /** @readonly */
    this.request = request;
  }
}

/**
 * @param {number} fd
 * @param {string} name the request's name, for the error
 * @param {number} request
 * @param {Buffer | number} argument a buffer is passed by pointer (the kernel may write to it), a number by value
 */
function ioctl(fd, name, request, argument) {
  const result =
    typeof argument === "number" ? ioctlCall(fd, request, "unsigned long", argument) : ioctlCall(fd, request, "void *", argument);
  // errno is read at once: it is only meaningful right after the failed call, in this thread.
  if (result === -1) throw new IoctlError(name, koffi.errno());
}

/**
 * struct ifreq with `name` and `flags` (ifr_flags). Throws a RangeError when the name does
 * not fit in IFNAMSIZ - 1 bytes.
 *
 * @param {string} name
 * @param {number} flags
 * @returns {Buffer}
 */
export function encodeIfreq(name, flags) {
  if (Buffer.byteLength(name) >= IFNAMSIZ) throw new RangeError(`interface name "${name}" is longer than ${IFNAMSIZ - 1} bytes`);
  const ifreq = Buffer.alloc(IFREQ_SIZE);
  ifreq.write(name, 0, "utf8");
  ifreq.writeUInt16LE(flags, IFNAMSIZ);
  return ifreq;
}

/**
 * The name in a struct ifreq (up to its NUL).
 *
 * @param {Buffer} ifreq
 * @returns {string}
 */
export function decodeIfreqName(ifreq) {
  const end = ifreq.subarray(0, IFNAMSIZ).indexOf(0);
  return ifreq.toString("utf8", 0, end === -1 ? IFNAMSIZ : end);
}

/**
 * Binds the /dev/net/tun descriptor `fd` to device `name`: attaches to it when a TUN/TAP of
 * that name exists (with the same flags: EINVAL otherwise, and for a device of another kind),
 * or creates it, not persistent, gone when the last descriptor closes. Returns the name of the
 * device attached to.
 *
 * Equivalent to: `ip tuntap add dev $name mode tap vnet_hdr` without its TUNSETPERSIST, or a
 * VMM attaching to an existing TAP
 *
 * @param {number} fd
 * @param {string} name
 * @param {number} flags
 * @returns {string}
 */
export function tunSetIff(fd, name, flags) {
  const ifreq = encodeIfreq(name, flags);
  ioctl(fd, "TUNSETIFF", TUNSETIFF, ifreq);
  return decodeIfreqName(ifreq);
}

/**
 * Makes the device of `fd` persistent (it outlives its descriptors) or not.
 *
 * Equivalent to: the persistence of `ip tuntap add`; `ip tuntap del` clears it before deleting
 *
 * @param {number} fd
 * @param {boolean} persistent
 */
export function tunSetPersist(fd, persistent) {
  ioctl(fd, "TUNSETPERSIST", TUNSETPERSIST, persistent ? 1 : 0);
}

/**
 * Lets the user `uid` attach to the device (TUNSETIFF) without CAP_NET_ADMIN.
 *
 * Equivalent to: `ip tuntap add ... user $uid`
 *
 * @param {number} fd
 * @param {number} uid
 */
export function tunSetOwner(fd, uid) {
  ioctl(fd, "TUNSETOWNER", TUNSETOWNER, uid);
}

/**
 * Lets the members of group `gid` attach to the device (TUNSETIFF) without CAP_NET_ADMIN.
 *
 * Equivalent to: `ip tuntap add ... group $gid`
 *
 * @param {number} fd
 * @param {number} gid
 */
export function tunSetGroup(fd, gid) {
  ioctl(fd, "TUNSETGROUP", TUNSETGROUP, gid);
}

/**
 * The offloads (TUN_F_*) the reader of `fd` accepts in the frames it is given.
 *
 * Equivalent to: none in iproute2; what Firecracker's virtio-net device does on its TAP
 *
 * @param {number} fd
 * @param {number} offloads
 */
export function tunSetOffload(fd, offloads) {
  ioctl(fd, "TUNSETOFFLOAD", TUNSETOFFLOAD, offloads);
}

/**
 * The size of the virtio_net_hdr that prefixes every frame read from or written to `fd`.
 *
 * Equivalent to: none in iproute2; what Firecracker's virtio-net device does on its TAP
 *
 * @param {number} fd
 * @param {number} size
 */
export function tunSetVnetHdrSize(fd, size) {
  const value = Buffer.alloc(4);
  value.writeInt32LE(size);
  ioctl(fd, "TUNSETVNETHDRSZ", TUNSETVNETHDRSZ, value);
}

/**
 * The current name of the device behind `fd`: follows renames and moves to another namespace.
 *
 * Equivalent to: `grep ^iff: /proc/$pid/fdinfo/$fd`
 *
 * @param {number} fd
 * @returns {string}
 */
export function tunGetIff(fd) {
  const ifreq = Buffer.alloc(IFREQ_SIZE);
  ioctl(fd, "TUNGETIFF", TUNGETIFF, ifreq);
  return decodeIfreqName(ifreq);
}

/**
 * An int argument passed by pointer, as most TUN ioctls take theirs.
 *
 * @param {number} value
 * @returns {Buffer}
 */
function intArgument(value) {
  const encoded = Buffer.alloc(4);
  encoded.writeInt32LE(value);
  return encoded;
}

/**
 * Turns the carrier of the device behind `fd` on or off, as its holder may, with no privilege.
 *
 * Equivalent to: none in iproute2 (`ip link set dev $name carrier off` needs CAP_NET_ADMIN)
 *
 * @param {number} fd
 * @param {boolean} on
 */
export function tunSetCarrier(fd, on) {
  ioctl(fd, "TUNSETCARRIER", TUNSETCARRIER, intArgument(on ? 1 : 0));
}

/**
 * Gives the device behind `fd` back the settings of a new TAP, among those that its holder may
 * change through its own descriptor, without any privilege, and that outlive the descriptor:
 * offloads, virtio_net_hdr size and byte order, the MAC filter, the classic and eBPF filters,
 * the eBPF steering program and the send buffer. So that a TAP another process held can be given
 * to a new one as if it had just been made. (The holder may also change the owner, group and
 * link type, which the caller checks once it holds the TAP, and the host side's MAC address,
 * which nothing on the host relies on and is left as it is.) TUNSETVNETBE fails with EINVAL on a kernel
 * built without big-endian virtio headers, which then cannot have one set either.
 *
 * Equivalent to: none in iproute2
 *
 * @param {number} fd
 */
export function tunResetSettings(fd) {
  ioctl(fd, "TUNSETOFFLOAD", TUNSETOFFLOAD, 0);
  ioctl(fd, "TUNSETVNETHDRSZ", TUNSETVNETHDRSZ, intArgument(DEFAULT_VNET_HDR_SIZE));
  ioctl(fd, "TUNSETVNETLE", TUNSETVNETLE, intArgument(0));
  try {
    ioctl(fd, "TUNSETVNETBE", TUNSETVNETBE, intArgument(0));
  } catch (error) {
    if (!(error instanceof IoctlError && error.code === "EINVAL")) throw error;
  }
  // struct tun_filter { u16 flags; u16 count; u8 addr[][6]; }: no address, nothing filtered.
  ioctl(fd, "TUNSETTXFILTER", TUNSETTXFILTER, Buffer.alloc(4));
  ioctl(fd, "TUNDETACHFILTER", TUNDETACHFILTER, 0);
  ioctl(fd, "TUNSETFILTEREBPF", TUNSETFILTEREBPF, intArgument(-1));
  ioctl(fd, "TUNSETSTEERINGEBPF", TUNSETSTEERINGEBPF, intArgument(-1));
  ioctl(fd, "TUNSETSNDBUF", TUNSETSNDBUF, intArgument(DEFAULT_SNDBUF));
}

/**
 * The virtio_net_hdr size of the device behind `fd`, and whether its fields are little-endian
 * whatever the host's order (TUNSETVNETLE): what tunResetSettings gives back, read.
 *
 * Equivalent to: none in iproute2
 *
 * @param {number} fd
 * @returns {{ vnetHdrSize: number, vnetLe: boolean }}
 */
export function tunGetVnetSettings(fd) {
  const size = intArgument(0);
  ioctl(fd, "TUNGETVNETHDRSZ", TUNGETVNETHDRSZ, size);
  const le = intArgument(0);
  ioctl(fd, "TUNGETVNETLE", TUNGETVNETLE, le);
  return { vnetHdrSize: size.readInt32LE(0), vnetLe: le.readInt32LE(0) !== 0 };
}
