/**
 * A bare TCP connect from inside a test namespace: did the three-way handshake complete, and
 * if not, how did it fail. For ports where any connection at all is the failure (another
 * guest's address, the service's own listeners), which `httpGet` cannot say for a non-HTTP
 * server such as the gRPC listener.
 */
import { assertOwnNamespace } from "./guest-relay.js";
import { execIn } from "./netns.js";
import type { SocketFailure } from "./refusal.js";

export type TcpConnectResult = { readonly ok: true } | SocketFailure;

// Plain JS for `node -e`. argv: [node, host, port, timeoutMs].
const CONNECT_SCRIPT = `
const net = require("node:net");
const [host, port, timeoutMs] = process.argv.slice(1);
let done = false;
const finish = (result) => {
  if (done) return;
  done = true;
  socket.destroy();
  process.stdout.write(JSON.stringify(result) + "\\n", () => process.exit(0));
};
const socket = net.connect({ host, port: Number(port) });
socket.on("connect", () => finish({ ok: true }));
socket.on("error", (error) => finish({ ok: false, code: error.code || "ERROR", message: error.message }));
setTimeout(() => finish({ ok: false, code: "ETIMEDOUT", message: "not connected within " + timeoutMs + " ms" }), Number(timeoutMs));
`;

/** Opens (and at once closes) a TCP connection to `host:port` from inside `ns`. */
export async function tcpConnect(ns: string, host: string, port: number, timeoutMs = 3000): Promise<TcpConnectResult> {
  assertOwnNamespace(ns);
  const result = await execIn(ns, process.execPath, ["-e", CONNECT_SCRIPT, host, String(port), String(timeoutMs)], {
    // Room for a slow process start on a loaded machine; the script itself ends after timeoutMs.
    timeout: timeoutMs + 30_000,
  });
  const line = String(result.stdout).trim().split("\n").at(-1) ?? "";
  return JSON.parse(line) as TcpConnectResult;
}
