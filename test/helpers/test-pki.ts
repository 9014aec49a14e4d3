/**
 * Throwaway certificates for the mTLS tests, made with the `openssl` command at test time
 * in a temporary directory (never committed): a CA, a server certificate and a client
 * certificate it signed, and a client certificate from another CA.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";

export interface TestPki {
  readonly dir: string;
  /** The CA that signed the server and the client certificates. */
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A client certificate of another CA, which the server must refuse. */
  readonly strangerCert: string;
  readonly strangerKey: string;
  /** Removes the directory. */
  dispose(): void;
}

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  await execa("openssl", args, { cwd: dir, timeout: 30_000 });
}

/** A P-256 key and a certificate for `subject`, signed by `ca` (or self-signed when absent). */
async function issue(dir: string, name: string, subject: string, extensions: string, ca?: string): Promise<void> {
  fs.writeFileSync(path.join(dir, `${name}.ext`), `${extensions}\n`);
  const keyArgs = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-subj", subject];
  if (ca === undefined) {
    await openssl(dir, ["req", "-x509", ...keyArgs, "-days", "2", "-out", `${name}.pem`, "-extensions", "v3", "-config", `${name}.cnf`]);
    return;
  }
  await openssl(dir, ["req", ...keyArgs, "-out", `${name}.csr`]);
  await openssl(dir, [
    "x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial",
    "-days", "2", "-out", `${name}.pem`, "-extfile", `${name}.ext`,
  ]);
}

async function issueCa(dir: string, name: string, commonName: string): Promise<void> {
  fs.writeFileSync(
    path.join(dir, `${name}.cnf`),
    "[req]\ndistinguished_name = dn\n[dn]\n[v3]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n",
  );
  await issue(dir, name, `/CN=${commonName}`, "", undefined);
}

/** The server certificate is valid for `serverIps` (and localhost). */
export async function createTestPki(serverIps: readonly string[]): Promise<TestPki> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-pki-"));
  try {
    await issueCa(dir, "ca", "rik-network test CA");
    await issueCa(dir, "stranger-ca", "some other CA");
    const leaf = "basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature";
    const sans = ["DNS:localhost", ...serverIps.map((ip) => `IP:${ip}`)].join(", ");
    await issue(dir, "server", "/CN=rik-network test node", `${leaf}\nextendedKeyUsage = serverAuth\nsubjectAltName = ${sans}`, "ca");
    await issue(dir, "client", "/CN=rik scheduler", `${leaf}\nextendedKeyUsage = clientAuth`, "ca");
    await issue(dir, "stranger", "/CN=rik scheduler", `${leaf}\nextendedKeyUsage = clientAuth`, "stranger-ca");
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const file = (name: string) => path.join(dir, name);
  return {
    dir,
    caCert: file("ca.pem"),
    serverCert: file("server.pem"),
    serverKey: file("server.key"),
    clientCert: file("client.pem"),
    clientKey: file("client.key"),
    strangerCert: file("stranger.pem"),
    strangerKey: file("stranger.key"),
    dispose: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
