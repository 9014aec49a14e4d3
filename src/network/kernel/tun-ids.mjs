/**
 * The limits of the ids the TUN driver takes, in a module of their own with no dependency:
 * the configuration checks `--tap-owner` and `--tap-group` against them, and must not load
 * the FFI (koffi, libc) that tun-ioctl.mjs loads at import, so that a CLI command never does.
 */

/** A uid_t or gid_t of (u32)-1 is the kernel's "none": TUNSETOWNER/TUNSETGROUP refuse it. */
export const MAX_ID = 0xfffffffe;
