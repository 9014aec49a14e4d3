import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import { errnoOf } from "./libnftables.js";
import { findNft, foreignForwardDrops, isSupportedVersion, parseNftVersion } from "./nft-firewall.js";

test("nft's version line, and which versions are supported (1.0 and later)", (t) => {
  t.deepEqual(parseNftVersion("nftables v1.0.6 (Lester Gooch #5)\n"), [1, 0, 6]);
  t.deepEqual(parseNftVersion("nftables v0.9.8 (E.D.S.)"), [0, 9, 8]);
  t.deepEqual(parseNftVersion("nftables v1.1 (x)"), [1, 1, 0]);
  t.is(parseNftVersion("nft-file-trace 1.11.5"), undefined);
  t.true(isSupportedVersion([1, 0, 0]));
  t.true(isSupportedVersion([1, 1, 3]));
  t.true(isSupportedVersion([2, 0, 0]));
  t.false(isSupportedVersion([0, 9, 8]));
});

test("findNft: the system's nft first, never one from node_modules (npm's PATH puts an unrelated nft there)", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rik-findnft-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fakeBin = path.join(dir, "node_modules", ".bin");
  const otherBin = path.join(dir, "bin");
  for (const bin of [fakeBin, otherBin]) {
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, "nft"), "#!/bin/sh\n", { mode: 0o755 });
  }
  const found = findNft(`${fakeBin}:${otherBin}`);
  t.false(found.includes("node_modules"));
  const system = ["/usr/sbin/nft", "/sbin/nft", "/usr/local/sbin/nft"].find((candidate) => fs.existsSync(candidate));
  t.is(found, system ?? path.join(otherBin, "nft"));
});

test("foreignForwardDrops: forward-hook chains of other tables with a drop policy, not ours and not accepting ones", (t) => {
  const listing = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6" } },
      { chain: { family: "ip", table: "filter", name: "FORWARD", type: "filter", hook: "forward", prio: 0, policy: "drop" } },
      { chain: { family: "ip", table: "filter", name: "INPUT", type: "filter", hook: "input", prio: 0, policy: "drop" } },
      { chain: { family: "inet", table: "firewalld", name: "filter_FORWARD", type: "filter", hook: "forward", prio: 10, policy: "accept" } },
      { chain: { family: "inet", table: "rik-network", name: "filter_forward", type: "filter", hook: "forward", prio: 0, policy: "drop" } },
      { chain: { family: "ip", table: "filter", name: "DOCKER" } },
    ],
  });
  t.deepEqual(foreignForwardDrops(listing), ["ip filter FORWARD"]);
});

test("errnoOf: libnftables names errno only in its text", (t) => {
  t.is(errnoOf("Error: Could not process rule: No such file or directory\ndelete element ..."), "ENOENT");
  t.is(errnoOf("Error: Could not process rule: File exists"), "EEXIST");
  t.is(errnoOf("Error: syntax error, unexpected junk"), undefined);
});
