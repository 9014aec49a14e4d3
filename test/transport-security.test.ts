/**
 * Who may talk to the service: root only on the unix socket by default (a group when
 * asked), and on TCP only clients with a certificate from the configured CA (mTLS), unless
 * plain TCP is asked for by name. Certificates are made with openssl at test time.
 */
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runCli } from "./helpers/cli-process.js";
import { firewallState, NO_FIREWALL } from "./helpers/kernel-state.js";
import { Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { createTestPki } from "./helpers/test-pki.js";

const TLS_PORT = 7443;

/** A directory others may traverse (unlike mkdtemp's 0700), so that only the socket's own mode decides. */
function traversableDir(t: { teardown(fn: () => unknown): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-sock-"));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("the TCP listener wants a client certificate from its CA: none is refused, another CA's is refused, a valid one works", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const pki = await createTestPki([topology.nodeIp]);
  t.teardown(() => pki.dispose());
  const listen = `${topology.nodeIp}:${TLS_PORT}`;
  const service = await startService({
    nodeNs: topology.node,
    listen,
    extraArgs: ["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.caCert],
  });
  t.teardown(() => service.stop());
  t.like(await service.waitForLog((entry) => entry.message === "ready"), { tcp_port: TLS_PORT, tcp_tls: "mtls" });
  // Clients are in the world namespace, reaching the node over the veth.
  const client = (...args: string[]) => runCli(topology.world, ["list", "--addr", listen, "--ca", pki.caCert, ...args]);

  const valid = await client("--cert", pki.clientCert, "--key", pki.clientKey);
  t.deepEqual(valid, { exitCode: 0, stdout: "no instances on this node\n", stderr: "" });

  const withoutCertificate = await client();
  t.is(withoutCertificate.exitCode, 1);
  t.is(withoutCertificate.stdout, "");
  t.regex(withoutCertificate.stderr, /^rik-network: UNAVAILABLE: .*certificate required/);
  t.regex(withoutCertificate.stderr, /hint: this server verifies clients \(mTLS\): pass --cert and --key/);

  const otherCa = await client("--cert", pki.strangerCert, "--key", pki.strangerKey);
  t.is(otherCa.exitCode, 1);
  t.is(otherCa.stdout, "");
  t.regex(otherCa.stderr, /^rik-network: UNAVAILABLE: /);

  const plainText = await runCli(topology.world, ["list", "--addr", listen, "--insecure"]);
  t.is(plainText.exitCode, 1);
  t.regex(plainText.stderr, /^rik-network: UNAVAILABLE: /);

  const rpcs = service.logs().filter((entry) => entry.message === "rpc");
  t.deepEqual(rpcs.map((entry) => entry.method), ["List"], "only the client with a valid certificate reached the service");
});

test("--listen without TLS files is refused with what to pass; --insecure-tcp serves plain TCP with a warning", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const listen = `${topology.nodeIp}:7100`;
  const refused = await runCli(topology.node, ["serve", "--socket", path.join(traversableDir(t), "rik.sock"), "--listen", listen]);
  t.is(refused.exitCode, 2);
  t.regex(refused.stderr, /^rik-network: --listen 198\.18\.0\.1:7100 serves TCP with TLS and verifies client certificates \(mTLS\), so it needs --tls-cert FILE \(RIK_NETWORK_TLS_CERT\), --tls-key FILE \(RIK_NETWORK_TLS_KEY\), --tls-client-ca FILE \(RIK_NETWORK_TLS_CLIENT_CA\); or pass --insecure-tcp/);
  t.deepEqual(await firewallState(topology.node), NO_FIREWALL, "nothing was set up");

  const service = await startService({ nodeNs: topology.node, listen, extraArgs: ["--insecure-tcp"] });
  t.teardown(() => service.stop());
  t.like(await service.waitForLog((entry) => entry.level === "warn"), {
    message: "serving plain TCP without TLS (--insecure-tcp): anyone who can reach this port can rewire the node's network",
    tcp_port: 7100,
  });
  const plain = await runCli(topology.world, ["health", "--addr", listen, "--insecure"]);
  t.deepEqual(plain, { exitCode: 0, stdout: "SERVING\n", stderr: "" });
});

test("the socket is root's (0600): a non-root user is refused; --socket-group lets that group in (0660)", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const socketPath = path.join(traversableDir(t), "rik.sock");
  const rootOnly = await startService({ nodeNs: topology.node, socketPath });
  t.teardown(() => rootOnly.stop());
  t.is(fs.statSync(socketPath).mode & 0o777, 0o600);
  t.is(fs.statSync(socketPath).uid, 0);

  const asRoot = await runCli(topology.node, ["health", "--socket", socketPath]);
  t.deepEqual(asRoot, { exitCode: 0, stdout: "SERVING\n", stderr: "" });
  const asNobody = await runCli(topology.node, ["health", "--socket", socketPath], { asNobody: true });
  t.is(asNobody.exitCode, 1);
  t.regex(asNobody.stderr, /^rik-network: UNAVAILABLE: .*EACCES/);
  t.regex(asNobody.stderr, /hint: the socket is root's \(mode 0600\)/);
  await rootOnly.stop();

  const grouped = await startService({ nodeNs: topology.node, socketPath, extraArgs: ["--socket-group", "nogroup"] });
  t.teardown(() => grouped.stop());
  const stats = fs.statSync(socketPath);
  t.is(stats.mode & 0o777, 0o660);
  t.is(stats.gid, 65534, "nogroup");
  const member = await runCli(topology.node, ["list", "--socket", socketPath, "--json"], { asNobody: true });
  t.deepEqual(member, { exitCode: 0, stdout: "{}\n", stderr: "" });
});

test("an unknown --socket-group stops the service before it touches the kernel", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const error = await t.throwsAsync(startService({ nodeNs: topology.node, extraArgs: ["--socket-group", "rik-no-such-group"] }));
  t.regex(error?.message ?? "", /group \\"rik-no-such-group\\" does not exist; create it \(groupadd rik-no-such-group\) or fix --socket-group/);
  t.deepEqual(await firewallState(topology.node), NO_FIREWALL, "nothing was set up");
});
