/**
 * One UDP request/answer from inside a test namespace, the UDP counterpart of `httpGet`.
 * The client socket is connected, so that an ICMP unreachable coming back is reported as a
 * socket error (ECONNREFUSED, EHOSTUNREACH...) instead of being ignored: that is how the
 * isolation tests tell "refused" from "dropped" (ETIMEDOUT).
 */
import { assertOwnNamespace } from "./guest-relay.js";
import { execIn } from "./netns.js";
import type { SocketFailure } from "./refusal.js";

export type UdpResult =
  | { readonly ok: true; readonly body: string; readonly fromAddress: string; readonly fromPort: number }
  | SocketFailure;

// Plain JS for `node -e`. argv: [node, host, port, timeoutMs, payload]. The datagram is sent
// again every 500 ms until an answer, an error or the timeout: a datagram can be lost (e.g.
// while a neighbour entry resolves) and a real UDP client retries too.
const CLIENT_SCRIPT = `
const dgram = require("node:dgram");
const [host, port, timeoutMs, payload] = process.argv.slice(1);
const socket = dgram.createSocket("udp4");
let done = false;
const finish = (result) => {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify(result) + "\\n", () => process.exit(0));
};
setTimeout(() => finish({ ok: false, code: "ETIMEDOUT", message: "no answer within " + timeoutMs + " ms" }), Number(timeoutMs));
socket.on("message", (message, remote) => finish({ ok: true, body: String(message), fromAddress: remote.address, fromPort: remote.port }));
socket.on("error", (error) => finish({ ok: false, code: error.code || "ERROR", message: error.message }));
socket.connect(Number(port), host, () => {
  const send = () => socket.send(payload, (error) => { if (error) finish({ ok: false, code: error.code || "ERROR", message: error.message }); });
  send();
  setInterval(send, 500);
});
`;

/**
 * Sends `payload` to `host:port` over UDP from inside `ns` (a namespace of this harness) and
 * returns the first answer or a typed failure. "No answer" takes `timeoutMs`.
 */
export async function udpRequest(ns: string, host: string, port: number, timeoutMs = 2000, payload = "ping"): Promise<UdpResult> {
  assertOwnNamespace(ns);
  const result = await execIn(ns, process.execPath, ["-e", CLIENT_SCRIPT, host, String(port), String(timeoutMs), payload], {
    // Room for a slow process start on a loaded machine; the script itself ends after timeoutMs.
    timeout: timeoutMs + 30_000,
  });
  const line = String(result.stdout).trim().split("\n").at(-1) ?? "";
  return JSON.parse(line) as UdpResult;
}
