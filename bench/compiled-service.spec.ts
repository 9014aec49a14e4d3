// Unit specs of the build check and the command line of the compiled service (no root, no kernel).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import { COMPILED_MAIN, serviceArgs } from "../test/helpers/service-process.js";
import { needsBuild, newestMtimeMs } from "./compiled-service.js";

test("needsBuild: no compiled entry point, or a source newer than it", (t) => {
  t.true(needsBuild(undefined, 0));
  t.true(needsBuild(1000, 1001));
  t.false(needsBuild(1000, 1000));
  t.false(needsBuild(1000, 999));
});

test("newestMtimeMs walks directories, takes files as they are, and skips what is missing", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-mtime-"));
  try {
    fs.mkdirSync(path.join(dir, "src", "deep"), { recursive: true });
    const old = path.join(dir, "src", "a.ts");
    const deep = path.join(dir, "src", "deep", "b.ts");
    const single = path.join(dir, "tsconfig.json");
    for (const file of [old, deep, single]) fs.writeFileSync(file, "");
    fs.utimesSync(old, 1000, 1000);
    fs.utimesSync(deep, 3000, 3000);
    fs.utimesSync(single, 2000, 2000);
    t.is(newestMtimeMs([path.join(dir, "src")]), 3_000_000);
    t.is(newestMtimeMs([single, path.join(dir, "missing")]), 2_000_000);
    t.is(newestMtimeMs([path.join(dir, "missing")]), 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the compiled service (startCompiledService) runs dist/main.js serve with the harness's flags", (t) => {
  const options = { nodeNs: "ns", socketPath: "/tmp/x/rik.sock", pool: "10.220.0.0/16", logLevel: "warn", compiled: true } as const;
  const args = serviceArgs({ ...options, firewallBackend: "iptables", extraArgs: ["--iptables-backend", "nft"] });
  t.deepEqual(args, [
    COMPILED_MAIN,
    "serve",
    "--socket",
    "/tmp/x/rik.sock",
    "--state-dir",
    "/tmp/x/state",
    "--pool",
    "10.220.0.0/16",
    "--node-name",
    "test-node",
    "--log-level",
    "warn",
    "--firewall-backend",
    "iptables",
    "--iptables-backend",
    "nft",
  ]);
  // A --firewall-backend of the caller's replaces the harness's.
  const own = serviceArgs({ ...options, extraArgs: ["--firewall-backend", "auto"] });
  t.deepEqual(own.slice(own.indexOf("warn") + 1), ["--firewall-backend", "auto"]);
  t.true(COMPILED_MAIN.endsWith(path.join("dist", "main.js")));
});
