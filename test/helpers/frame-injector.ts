/**
 * A hostile guest's NIC without a guest kernel, run inside the node namespace:
 *
 *   node --import tsx test/helpers/frame-injector.ts --tap TAP
 *
 * Attaches to the EXISTING TAP as Firecracker does (openTap), then writes every frame given
 * on stdin (one hex line each; answers "wrote") and prints every IPv6 frame the host sends to
 * the TAP as "frame <hex>". A guest kernel of its own choosing can send whatever these frames
 * say, so they are what the node must withstand. Exits as tap-relay.ts does: on SIGTERM, or
 * when stdin ends.
 */
import fs from "node:fs";
import { createInterface } from "node:readline";
import { openTap, VNET_HDR_SIZE } from "./open-tap.js";

function fatal(message: string): never {
  fs.writeSync(2, `fatal: ${message}\n`);
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable");
}

const tapAt = process.argv.indexOf("--tap");
const tap = process.argv[tapAt + 1];
if (tapAt < 0 || tap === undefined) fatal("usage: frame-injector.ts --tap TAP");
// TUNSETIFF would silently create a fresh TAP: insist on the existing one.
if (!fs.existsSync(`/sys/class/net/${tap}`)) fatal(`TAP ${tap} does not exist in this namespace`);

let fd: number;
try {
  fd = openTap(tap, { offload: false });
} catch (error) {
  fatal(`opening TAP ${tap}: ${(error as Error).message}`);
}

const buffer = Buffer.allocUnsafe(64 * 1024);
const read = (): void => {
  fs.read(fd, buffer, 0, buffer.length, null, (error, length) => {
    if (error !== null) {
      if (error.code === "EAGAIN" || error.code === "EINTR") return read();
      fatal(`read: ${error.message}`);
    }
    const frame = buffer.subarray(VNET_HDR_SIZE, length);
    if (frame.length >= 14 && frame.readUInt16BE(12) === 0x86dd) fs.writeSync(1, `frame ${frame.toString("hex")}\n`);
    read();
  });
};
read();

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const frame = Buffer.from(line.trim(), "hex");
  try {
    fs.writeSync(fd, Buffer.concat([Buffer.alloc(VNET_HDR_SIZE), frame]));
    fs.writeSync(1, "wrote\n");
  } catch (error) {
    fs.writeSync(1, `failed ${(error as Error).message}\n`);
  }
});
lines.on("close", () => process.kill(process.pid, "SIGTERM"));
fs.writeSync(1, "ready\n");
