import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import test from "ava";
import { NetworkError } from "./network-error.js";
import { TapCreator } from "./tap-creator.js";

test("a name longer than IFNAMSIZ is refused before anything is asked of the kernel", async (t) => {
  const taps = new TapCreator();
  t.teardown(() => taps.close());
  const error = await t.throwsAsync(taps.add("rik-name-far-too-long"), { instanceOf: NetworkError });
  t.is(error!.code, "invalid-argument");
});

test("after close, creations are refused as unavailable", async (t) => {
  const taps = new TapCreator();
  await taps.close();
  t.is((await t.throwsAsync(taps.add("rikx"), { instanceOf: NetworkError }))!.code, "unavailable");
});

test("concurrent creations: every TAP is made persistent with Firecracker's flags and detached; a clash keeps its code", (t) => {
  if (process.getuid?.() !== 0) {
    t.log("skipped: creating a network namespace needs root");
    t.pass();
    return;
  }
  const ns = `riktc-${randomBytes(4).toString("hex")}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    // A device that is not a TAP under a name we ask for: TUNSETIFF refuses it.
    execFileSync("ip", ["-n", ns, "link", "add", "riktaken", "type", "veth", "peer", "name", "riktaken-peer"]);
    const names = [...Array.from({ length: 8 }, (_, i) => `riktc${i}`), "riktaken"];
    const output = execFileSync("ip", ["netns", "exec", ns, process.execPath, "--import=tsx", "test/fixtures/tap-creator-run.ts", ...names], {
      encoding: "utf8",
      timeout: 30_000,
    });
    const results = output.trim().split("\n").map((line) => JSON.parse(line) as { name: string; ok: boolean; code?: string; message?: string });
    t.deepEqual(results.filter((r) => r.ok).map((r) => r.name), names.slice(0, 8));
    t.like(results.find((r) => r.name === "riktaken"), { ok: false, code: "internal" });
    t.regex(results.find((r) => r.name === "riktaken")?.message ?? "", /creating TAP riktaken failed with EINVAL: a device named riktaken that is not a matching TAP/);
    const links = JSON.parse(execFileSync("ip", ["-n", ns, "-d", "-j", "link", "show"], { encoding: "utf8" })) as {
      ifname: string;
      linkinfo?: { info_data?: { type?: string; pi?: boolean; vnet_hdr?: boolean; persist?: boolean } };
    }[];
    for (const name of names.slice(0, 8)) {
      t.like(links.find((link) => link.ifname === name)?.linkinfo?.info_data, { type: "tap", pi: false, vnet_hdr: true, persist: true }, name);
    }
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
});
