/**
 * The guest side of a guest fleet, started by `guest-fleet.ts` inside the guest namespace:
 *
 *   node test/helpers/fleet-guests.mjs '<config JSON, see guest-fleet.ts FleetGuestsConfig>'
 *
 * 1. Makes guest i's NIC `g<i>`: a non-persistent TAP (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR) created
 *    here, so in this namespace. Made in the node namespace, each would have to be moved
 *    here, and a move costs ~17 ms of rtnl time (far more while other tests hold rtnl).
 * 2. Starts `fleet-relay.ts` in the node namespace, handing it the NIC fds as fds 3.. (the
 *    only way to give one process TAPs of two namespaces: node cannot pass fds over a socket),
 *    and closes its own copies, so that each NIC lives exactly as long as the relay's fd.
 * 3. Serves HTTP on 0.0.0.0:<port>, answering "guest <local address>": which guest answered.
 *
 * stdout carries this process's lines ("relay <pid>", "listening <port>") and the relay's
 * ("ready", "down <i> <reason>"); stderr both processes' errors. This process exits when
 * the relay does (1 if unexpected), and takes the relay down when it gets SIGTERM or its
 * stdin ends (the parent died). Plain JS: no tsx start-up before the relay's own.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import { TAP_FLAGS, tunSetIff } from "../../src/network/kernel/tun-ioctl.mjs";

/** The relay finds guest i's NIC at this fd. */
const FIRST_GUEST_FD = 3;

const config = JSON.parse(process.argv[2] ?? "");

function fail(message) {
  process.stderr.write(`fleet guests: ${message}\n`);
  process.exit(1);
}

function createTap(name) {
  const fd = fs.openSync("/dev/net/tun", fs.constants.O_RDWR);
  try {
    tunSetIff(fd, name, TAP_FLAGS);
  } catch (error) {
    fail(`creating TAP ${name}: ${error.message}`);
  }
  return fd;
}

const fds = config.taps.map((_, index) => createTap(`${config.nicPrefix}${index}`));
const relay = spawn(
  "ip",
  [
    "netns",
    "exec",
    config.nodeNs,
    process.execPath,
    "--import",
    "tsx",
    config.relayScript,
    "--guest-ns",
    config.guestNs,
    "--guest-fds",
    String(FIRST_GUEST_FD),
    ...(config.offload ? [] : ["--no-offload"]),
    ...config.taps.flatMap((tap) => ["--tap", tap]),
  ],
  {
    cwd: config.cwd,
    // One blocking read per direction per guest; more guests than threads would starve.
    env: { ...process.env, UV_THREADPOOL_SIZE: String(config.threadpoolSize) },
    stdio: ["pipe", "inherit", "inherit", ...fds],
  },
);
// spawn() returns once the child exists with its copies of the fds.
for (const fd of fds) fs.closeSync(fd);
if (relay.pid === undefined) fail("could not start the relay");
process.stdout.write(`relay ${relay.pid}\n`);

let stopping = false;
relay.on("exit", (code, signal) => {
  if (!stopping) fail(`relay exited unexpectedly (${signal ?? `code ${code}`})`);
  process.exit(0);
});
const stop = () => {
  if (stopping) return;
  stopping = true;
  relay.kill("SIGTERM");
};
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();

const server = http.createServer((req, res) => {
  const body = `guest ${req.socket.localAddress}`;
  res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body), connection: "close" });
  res.end(body);
});
server.on("error", (error) => fail(`http server: ${error.stack}`));
server.listen(config.port, "0.0.0.0", 1024, () => process.stdout.write(`listening ${server.address().port}\n`));
