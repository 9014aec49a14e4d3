import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import { Iptables } from "./iptables.js";
import { NetworkError } from "./network-error.js";

/**
 * A stand-in for iptables-restore: records its arguments and input, counts its runs, and
 * fails the way the real one does when the input asks it to.
 */
function fakeRestore(t: { teardown: (fn: () => void) => void }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-iptables-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const command = path.join(dir, "iptables-restore");
  fs.writeFileSync(
    command,
    `#!/bin/sh
printf '%s\\n' "$*" > "${dir}/args"
cat > "${dir}/input"
echo run >> "${dir}/runs"
if grep -q LOCKED "${dir}/input"; then echo "Another app is currently holding the xtables lock." >&2; exit 4; fi
if grep -q BAD "${dir}/input"; then echo "iptables-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?)." >&2; exit 1; fi
echo "ignored stdout"
exit 0
`,
    { mode: 0o755 },
  );
  const save = path.join(dir, "iptables-save");
  fs.writeFileSync(save, "#!/bin/sh\nprintf '*filter\\n:FORWARD ACCEPT [0:0]\\nCOMMIT\\n'\n", { mode: 0o755 });
  const read = (name: string) => (fs.existsSync(path.join(dir, name)) ? fs.readFileSync(path.join(dir, name), "utf8") : "");
  return {
    command,
    save,
    args: () => read("args"),
    input: () => read("input"),
    runs: () => read("runs").split("\n").filter(Boolean).length,
  };
}

function observed() {
  const calls: boolean[] = [];
  return { calls, observer: { iptablesRestore: (_seconds: number, ok: boolean) => void calls.push(ok) } };
}

test("restore runs iptables-restore --noflush --wait N with the batch on stdin", async (t) => {
  const fake = fakeRestore(t);
  const { calls, observer } = observed();
  const iptables = new Iptables({ restoreCommand: fake.command, lockWaitSeconds: 7, observer });
  t.teardown(() => iptables.close());
  const batch = "*filter\n-A RIKLET-FORWARD -s 10.220.0.2/32 -m comment --comment \"rik:a\" -j ACCEPT\nCOMMIT\n";
  await iptables.restore(batch);
  t.is(fake.args(), "--noflush --wait 7\n");
  t.is(fake.input(), batch);
  t.deepEqual(calls, [true]);
});

test("an empty batch runs nothing", async (t) => {
  const fake = fakeRestore(t);
  const iptables = new Iptables({ restoreCommand: fake.command });
  t.teardown(() => iptables.close());
  await iptables.restore("");
  t.is(fake.runs(), 0);
});

test("a refused batch fails with iptables-restore's own message", async (t) => {
  const fake = fakeRestore(t);
  const { calls, observer } = observed();
  const iptables = new Iptables({ restoreCommand: fake.command, observer });
  t.teardown(() => iptables.close());
  const error = await t.throwsAsync(iptables.restore("*filter\n-D BAD\nCOMMIT\n"), { instanceOf: NetworkError });
  t.is(error!.code, "internal");
  t.is(error!.message, `${fake.command} failed: iptables-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?).`);
  t.deepEqual(calls, [false]);
  t.is(fake.runs(), 1, "no retry for a bad rule");
  await t.notThrowsAsync(iptables.restore("*filter\nCOMMIT\n"), "the next batch runs normally");
});

test("a batch that lost the race for the xtables lock is retried, a bounded number of times", async (t) => {
  const fake = fakeRestore(t);
  const { calls, observer } = observed();
  const iptables = new Iptables({ restoreCommand: fake.command, lockRetries: 2, observer });
  t.teardown(() => iptables.close());
  await t.throwsAsync(iptables.restore("*filter\n# LOCKED\nCOMMIT\n"), { message: /holding the xtables lock/ });
  t.is(fake.runs(), 3, "the first attempt and two retries");
  t.deepEqual(calls, [false]);
});

test("a missing iptables-restore is reported as not installed", async (t) => {
  const iptables = new Iptables({ restoreCommand: "/nonexistent/iptables-restore" });
  t.teardown(() => iptables.close());
  const error = await t.throwsAsync(iptables.restore("*filter\nCOMMIT\n"), { instanceOf: NetworkError });
  t.is(error!.code, "unavailable");
  t.regex(error!.message, /not installed/);
});

test("save returns iptables-save's output", async (t) => {
  const fake = fakeRestore(t);
  const iptables = new Iptables({ restoreCommand: fake.command, saveCommand: fake.save });
  t.teardown(() => iptables.close());
  t.is(await iptables.save(), "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n");
});

test("close refuses later batches", async (t) => {
  const fake = fakeRestore(t);
  const iptables = new Iptables({ restoreCommand: fake.command });
  await iptables.restore("*filter\nCOMMIT\n");
  await iptables.close();
  await t.throwsAsync(iptables.restore("*filter\nCOMMIT\n"), { instanceOf: NetworkError, message: /closed/ });
});
