import { closeSync, openSync } from "node:fs";
import { constants } from "node:os";
import test from "ava";
import { decodeIfreqName, encodeIfreq, IoctlError, TAP_FLAGS, tunSetIff, tunSetOwner } from "./tun-ioctl.mjs";

test("struct ifreq: the name NUL-padded in the first 16 bytes, the flags little-endian at 16, 40 bytes in all", (t) => {
  const ifreq = encodeIfreq("rikabc", TAP_FLAGS);
  t.is(ifreq.length, 40);
  t.deepEqual([...ifreq.subarray(0, 16)], [..."rikabc"].map((c) => c.charCodeAt(0)).concat(new Array(10).fill(0)));
  t.deepEqual([...ifreq.subarray(16, 18)], [0x02, 0x50], "IFF_TAP | IFF_NO_PI | IFF_VNET_HDR = 0x5002");
  t.deepEqual([...ifreq.subarray(18)], new Array(22).fill(0));
});

test("struct ifreq: a name of 15 bytes fits, one of 16 leaves no room for the NUL and is refused", (t) => {
  t.is(decodeIfreqName(encodeIfreq("rik-spare-99999", TAP_FLAGS)), "rik-spare-99999");
  t.throws(() => encodeIfreq("rik-spare-999999", TAP_FLAGS), { instanceOf: RangeError, message: /longer than 15 bytes/ });
  t.throws(() => encodeIfreq("ré-spare-999999", TAP_FLAGS), { instanceOf: RangeError }, "16 bytes in 15 characters");
});

test("the name the kernel writes back is read up to its NUL, or all 16 bytes without one", (t) => {
  const ifreq = Buffer.alloc(40, 0x41);
  ifreq.write("tap0\0junk", 0, "latin1");
  t.is(decodeIfreqName(ifreq), "tap0");
  t.is(decodeIfreqName(Buffer.alloc(40, 0x41)), "A".repeat(16));
});

test("an ioctl failure carries its request and the errno's name and number", (t) => {
  const error = new IoctlError("TUNSETOWNER", constants.errno.EPERM);
  t.like(error, { name: "IoctlError", code: "EPERM", errno: 1, request: "TUNSETOWNER" });
  t.is(error.message, "TUNSETOWNER: EPERM (operation not permitted)");
});

test("libc's errno reaches the caller: TUNSETIFF on a descriptor that is not /dev/net/tun is refused", (t) => {
  // /dev/null has no ioctls: ENOTTY, whatever the privileges, and nothing is created.
  const fd = openSync("/dev/null", "r");
  t.teardown(() => closeSync(fd));
  t.like(t.throws(() => tunSetIff(fd, "rikx", TAP_FLAGS), { instanceOf: IoctlError }), { code: "ENOTTY", request: "TUNSETIFF" });
  t.like(t.throws(() => tunSetOwner(-1, 0), { instanceOf: IoctlError }), { code: "EBADF", request: "TUNSETOWNER" });
});
