import test from "ava";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadServerTls } from "./load-server-tls.js";

async function files(t: { teardown(fn: () => unknown): void }, contents: { cert?: string; key?: string; ca?: string }) {
  const dir = await mkdtemp(join(tmpdir(), "rik-network-tls-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const paths = { certPath: join(dir, "cert.pem"), keyPath: join(dir, "key.pem"), clientCaPath: join(dir, "ca.pem") };
  if (contents.cert !== undefined) await writeFile(paths.certPath, contents.cert);
  if (contents.key !== undefined) await writeFile(paths.keyPath, contents.key);
  if (contents.ca !== undefined) await writeFile(paths.clientCaPath, contents.ca);
  return paths;
}

test("a missing file is named, with what it was for", async (t) => {
  const paths = await files(t, { cert: "x", ca: "x" });
  await t.throwsAsync(loadServerTls(paths), { message: new RegExp(`^cannot read the TLS key ${paths.keyPath}: ENOENT`) });
});

test("a certificate and key that make no TLS context are refused with both paths", async (t) => {
  const paths = await files(t, { cert: "not a certificate", key: "not a key", ca: "x" });
  await t.throwsAsync(loadServerTls(paths), {
    message: new RegExp(`^the TLS certificate ${paths.certPath} and key ${paths.keyPath} are unusable together: `),
  });
});
