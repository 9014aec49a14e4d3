import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { fakeIptablesRestore } from "../../../../test/helpers/fake-iptables-restore.js";
import { addsOnly, batchProblem, relativeLineNumbers, RestoreSession } from "./restore-session.js";

const execFileAsync = promisify(execFile);

/** Whether a process is still there, zombies included (/proc/PID exists until it is reaped). */
const exists = (pid: number) => fs.existsSync(`/proc/${pid}`);

const ok = { exitCode: 0, signal: null, stdout: "", stderr: "" };

function session(t: { teardown: (fn: () => Promise<void>) => void }, restoreCommand: string): RestoreSession {
  const restore = new RestoreSession({ restoreCommand });
  t.teardown(() => restore.close());
  return restore;
}

test("batchProblem accepts nothing but whole table blocks ending in a newline", (t) => {
  t.is(batchProblem(""), undefined);
  t.is(batchProblem("*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n"), undefined);
  t.is(batchProblem("*nat\nCOMMIT\n*filter\nCOMMIT\n\n"), undefined);
  t.regex(batchProblem("*filter\nCOMMIT") ?? "", /newline/);
  t.regex(batchProblem("*filter\n-A FORWARD -j ACCEPT\n") ?? "", /COMMIT/);
  t.regex(batchProblem("*filter\nCOMMIT\n# trailing comment\n") ?? "", /COMMIT/);
  t.regex(batchProblem("*filter\nCOMMIT \n") ?? "", /COMMIT/);
  t.regex(batchProblem("*filter\n\0\nCOMMIT\n") ?? "", /NUL/);
});

test("relativeLineNumbers counts the line numbers of every message form from the batch's first line", (t) => {
  t.is(relativeLineNumbers("iptables-restore: line 18 failed: No chain/target/match by that name.\n", 15), "iptables-restore: line 3 failed: No chain/target/match by that name.\n");
  t.is(relativeLineNumbers("unknown option \"--bogus\"\nError occurred at line: 9\n", 5), "unknown option \"--bogus\"\nError occurred at line: 4\n");
  t.is(relativeLineNumbers("iptables-restore: COMMIT expected at line 12\n", 10), "iptables-restore: COMMIT expected at line 2\n");
  t.is(relativeLineNumbers("line 3 failed\n", 0), "line 3 failed\n");
  t.is(relativeLineNumbers("line 3 failed\n", 5), "line 3 failed\n", "a number before the batch is left as it is");
  t.is(relativeLineNumbers("baseline 30 failed\n", 5), "baseline 30 failed\n");
});

test("each batch resolves on its ack; batches in a row go to one process", async (t) => {
  const fake = fakeIptablesRestore(t);
  const restore = session(t, fake.command);
  t.is(restore.pid, undefined, "no process before the first batch");
  t.deepEqual(await restore.run("*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n"), ok);
  const pid = restore.pid;
  t.truthy(pid);
  t.deepEqual(await restore.run("*nat\n-A PREROUTING -j ACCEPT\nCOMMIT\n"), ok);
  const concurrent = await Promise.all(Array.from({ length: 5 }, (_, i) => restore.run(`*filter\n-A F${i} -j ACCEPT\nCOMMIT\n`)));
  t.deepEqual(concurrent, Array(5).fill(ok));
  t.is(restore.pid, pid, "the same process");
  t.is(fake.runs(), 1);
  t.is(fake.args(), "--noflush --verbose\n");
  const acks = fake.input().split("\n").filter((line) => line.startsWith("# rik-ack "));
  t.is(acks.length, 7, "one ack line a batch");
  t.deepEqual(fake.input().split("\n").filter((line) => /^-A F\d /.test(line)), ["-A F0 -j ACCEPT", "-A F1 -j ACCEPT", "-A F2 -j ACCEPT", "-A F3 -j ACCEPT", "-A F4 -j ACCEPT"], "in order");
});

test("a failed batch reports its process's exit and line numbers of its own; the next batch starts a new process", async (t) => {
  const fake = fakeIptablesRestore(t);
  const restore = session(t, fake.command);
  await restore.run("*filter\n:RIK-X - [0:0]\n-A RIK-X -j ACCEPT\nCOMMIT\n");
  const first = restore.pid!;
  // The fake has read 5 lines (4 and the ack) before this batch; its BAD line is the third.
  const failed = await restore.run("*filter\n-A RIK-X -j DROP\n-D RIK-X BAD\nCOMMIT\n");
  t.deepEqual(failed, {
    exitCode: 1,
    signal: null,
    stdout: "",
    stderr: "iptables-restore: line 3 failed: Bad rule (does a matching rule exist in that chain?).\n",
  });
  t.deepEqual(await restore.run("*filter\n-A RIK-X -j ACCEPT\nCOMMIT\n"), ok);
  t.not(restore.pid, first);
  t.false(exists(first), "the failed process was reaped");
  const failedAgain = await restore.run("*filter\n# BAD\nCOMMIT\n");
  t.regex(failedAgain.stderr, /^iptables-restore: line 2 failed/, "counted from the batch on the new process too");
  t.is(fake.runs(), 2);
});

test("a process killed while idle is replaced by the next batch", async (t) => {
  const fake = fakeIptablesRestore(t);
  const restore = session(t, fake.command);
  await restore.run("*filter\nCOMMIT\n");
  const first = restore.pid!;
  process.kill(first, "SIGKILL");
  for (let i = 0; i < 200 && exists(first); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.deepEqual(await restore.run("*filter\nCOMMIT\n"), ok);
  t.not(restore.pid, first);
});

test("a malformed batch is rejected before anything is written", async (t) => {
  const fake = fakeIptablesRestore(t);
  const restore = session(t, fake.command);
  await restore.run("*filter\nCOMMIT\n");
  const before = fake.input();
  await t.throwsAsync(restore.run("*filter\n-A FORWARD -j ACCEPT\nCOMMIT"), { message: /does not end in a newline/ });
  await t.throwsAsync(restore.run("*filter\n-A FORWARD -j ACCEPT\n"), { message: /last line is not COMMIT/ });
  t.is(fake.input(), before);
  t.deepEqual(await restore.run("*filter\n-D BAD\nCOMMIT\n").then((result) => result.stderr), "iptables-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?).\n", "the line count is unaffected");
});

test("a missing iptables-restore rejects with ENOENT", async (t) => {
  const restore = session(t, "/nonexistent/iptables-restore");
  const error = await t.throwsAsync(restore.run("*filter\nCOMMIT\n"));
  t.is((error as NodeJS.ErrnoException).code, "ENOENT");
  t.regex(error!.message, /cannot run \/nonexistent\/iptables-restore/);
  await t.throwsAsync(restore.run("*filter\nCOMMIT\n"), { message: /ENOENT/ }, "and again for the next batch");
});

test("close with nothing in flight ends the process and refuses later batches", async (t) => {
  const fake = fakeIptablesRestore(t);
  const restore = new RestoreSession({ restoreCommand: fake.command });
  await t.notThrowsAsync(new RestoreSession({ restoreCommand: fake.command }).close(), "a session that never ran closes at once");
  await restore.run("*filter\nCOMMIT\n");
  const pid = restore.pid!;
  await restore.close();
  t.false(exists(pid), "exited at EOF and reaped");
  t.is(restore.pid, undefined);
  await t.throwsAsync(restore.run("*filter\nCOMMIT\n"), { message: /closed/ });
  await t.notThrowsAsync(restore.close(), "close is idempotent");
});

test("close waits for the batch in flight and the queued ones", async (t) => {
  const fake = fakeIptablesRestore(t);
  const restore = new RestoreSession({ restoreCommand: fake.command });
  const settled: string[] = [];
  const slow = restore.run("*filter\n-A FORWARD SLOW\nCOMMIT\n").then((result) => (settled.push("slow"), result));
  const queued = restore.run("*nat\nCOMMIT\n").then((result) => (settled.push("queued"), result));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const pid = restore.pid!;
  await restore.close();
  settled.push("closed");
  t.deepEqual(settled, ["slow", "queued", "closed"]);
  t.deepEqual(await slow, ok);
  t.deepEqual(await queued, ok);
  t.false(exists(pid));
});

test("close SIGKILLs a process that does not exit on EOF", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-session-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const stubborn = path.join(dir, "iptables-restore");
  fs.writeFileSync(stubborn, "#!/bin/sh\nwhile IFS= read -r line; do case \"$line\" in '#'*) echo \"$line\";; esac; done\ntrap '' TERM\nwhile :; do sleep 1; done\n", { mode: 0o755 });
  const restore = new RestoreSession({ restoreCommand: stubborn, closeGraceMs: 100 });
  t.deepEqual(await restore.run("*filter\nCOMMIT\n"), ok);
  const pid = restore.pid!;
  await restore.close();
  t.false(exists(pid));
});

test("an idle session does not keep the process alive", async (t) => {
  const fake = fakeIptablesRestore(t);
  const script = `
    import { RestoreSession } from ${JSON.stringify(new URL("./restore-session.ts", import.meta.url).href)};
    const restore = new RestoreSession({ restoreCommand: ${JSON.stringify(fake.command)} });
    const result = await restore.run("*filter\\nCOMMIT\\n");
    console.log(JSON.stringify({ exitCode: result.exitCode }));
  `;
  const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { timeout: 60_000 });
  t.deepEqual(JSON.parse(stdout.trim()), { exitCode: 0 });
});

/** Whether the real iptables-restore can be run here in a namespace of its own: root, and the nf_tables backend (the session's). */
function realNftRestore(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    return execFileSync("iptables-restore", ["--version"], { encoding: "utf8" }).includes("nf_tables");
  } catch {
    return false;
  }
}

// Shown as skipped where it cannot run (not root, or iptables-restore missing or legacy).
(realNftRestore() ? test : test.skip)("the real iptables-restore, in a throwaway network namespace: batches on one process, and a failure's line number", async (t) => {
  const ns = `rikss-${randomBytes(4).toString("hex")}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-session-"));
  const inNs = (file: string, args: string[]) => execFileSync("ip", ["netns", "exec", ns, file, ...args], { encoding: "utf8", timeout: 10_000 });
  // `exec`, so that the session's child is iptables-restore itself, inside the namespace.
  const restoreCommand = path.join(dir, "iptables-restore");
  fs.writeFileSync(restoreCommand, `#!/bin/sh\nexec ip netns exec ${ns} iptables-restore "$@"\n`, { mode: 0o755 });
  execFileSync("ip", ["netns", "add", ns]);
  const restore = new RestoreSession({ restoreCommand });
  try {
    t.deepEqual(await restore.run("*filter\n:RIKSS-TEST - [0:0]\n-A RIKSS-TEST -s 10.220.0.2/32 -j ACCEPT\nCOMMIT\n"), ok);
    const pid = restore.pid;
    t.deepEqual(await restore.run("*filter\n-A RIKSS-TEST -s 10.220.0.6/32 -j DROP\nCOMMIT\n"), ok);
    t.is(restore.pid, pid, "one process for both batches");
    const rules = inNs("iptables-save", ["-t", "filter"]).split("\n").filter((line) => line.startsWith("-A RIKSS-TEST"));
    t.deepEqual(rules, ["-A RIKSS-TEST -s 10.220.0.2/32 -j ACCEPT", "-A RIKSS-TEST -s 10.220.0.6/32 -j DROP"], "both batches applied");
    // Third line of the batch, 10th of the process.
    const failed = await restore.run("*filter\n-A RIKSS-TEST -s 10.220.0.10/32 -j ACCEPT\n-A RIKSS-MISSING -j ACCEPT\nCOMMIT\n");
    t.is(failed.exitCode, 1);
    t.regex(failed.stderr, /^iptables-restore: line 3 failed/);
    t.deepEqual(await restore.run("*filter\n-D RIKSS-TEST -s 10.220.0.6/32 -j DROP\nCOMMIT\n"), ok, "a new process takes the next batch");
    t.not(restore.pid, pid);
    const after = inNs("iptables-save", ["-t", "filter"]).split("\n").filter((line) => line.startsWith("-A RIKSS-TEST"));
    t.deepEqual(after, ["-A RIKSS-TEST -s 10.220.0.2/32 -j ACCEPT"], "the failed block applied nothing");
  } finally {
    await restore.close();
    execFileSync("ip", ["netns", "del", ns]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("addsOnly: appends and inserts may go to a session; deletes, flushes and chain declarations may not", (t) => {
  t.true(addsOnly(""));
  t.true(addsOnly("*nat\n-A RIKLET-P15 -p tcp -j DNAT --to-destination 10.220.0.2:80\n# note\nCOMMIT\n*filter\n-I FORWARD 1 -j RIKLET-FORWARD\nCOMMIT\n"));
  t.false(addsOnly("*nat\n-D RIKLET-P15 -p tcp -j DNAT --to-destination 10.220.0.2:80\nCOMMIT\n"));
  t.false(addsOnly("*nat\n-F RIKLET\n-A RIKLET -j RETURN\nCOMMIT\n"));
  t.false(addsOnly("*nat\n-X RIKLET-OLD\nCOMMIT\n"));
  t.false(addsOnly("*nat\n:RIKLET - [0:0]\nCOMMIT\n"));
});
