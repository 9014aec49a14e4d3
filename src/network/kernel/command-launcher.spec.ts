import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { CommandLauncher, parseResponse, requestScript, resultOf, shellQuote } from "./command-launcher.js";

const execFileAsync = promisify(execFile);

/** Whether a process is still there, zombies included (/proc/PID exists until it is reaped). */
const exists = (pid: number) => fs.existsSync(`/proc/${pid}`);

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  if (!condition()) throw new Error(`gave up waiting: ${what}`);
}

test("shellQuote keeps every character literal", (t) => {
  t.is(shellQuote("plain"), "'plain'");
  t.is(shellQuote("it's $HOME `x`"), `'it'\\''s $HOME \`x\`'`);
});

test("requestScript wraps the command in a brace group with a here-document and a status line", (t) => {
  t.is(
    requestScript("iptables-restore", ["--noflush"], "*filter\nCOMMIT", "m1"),
    "{ 'iptables-restore' '--noflush' 2>&1 >/dev/null <<'RIK_EOF_m1'\n*filter\nCOMMIT\nRIK_EOF_m1\nprintf '\\n%s %d\\n' 'm1' \"$?\"; }\n",
  );
  t.throws(() => requestScript("x", [], "a\nRIK_EOF_m1\n", "m1"), { message: /here-document delimiter/ });
  t.throws(() => requestScript("x", [], "a\0b", "m1"), { message: /NUL/ });
});

test("parseResponse waits for the whole status line and keeps stderr exact", (t) => {
  t.is(parseResponse("some err", "m1"), undefined);
  t.is(parseResponse("some err\nm1 ", "m1"), undefined);
  t.is(parseResponse("some err\nm1 1", "m1"), undefined);
  t.deepEqual(parseResponse("line 2 failed\n\nm1 1\n", "m1"), { stderr: "line 2 failed\n", status: 1 });
  t.deepEqual(parseResponse("no newline\nm1 2\n", "m1"), { stderr: "no newline", status: 2 });
  t.deepEqual(parseResponse("\nm1 0\n", "m1"), { stderr: "", status: 0 });
});

test("resultOf maps a status above 128 to the signal, as Node reports it", (t) => {
  t.deepEqual(resultOf(0, ""), { exitCode: 0, signal: null, stdout: "", stderr: "" });
  t.deepEqual(resultOf(4, "e"), { exitCode: 4, signal: null, stdout: "", stderr: "e" });
  t.deepEqual(resultOf(128 + 9, ""), { exitCode: null, signal: "SIGKILL", stdout: "", stderr: "" });
});

test("each run gets its own exit code and stderr; stdout is discarded", async (t) => {
  const launcher = new CommandLauncher();
  try {
    t.deepEqual(await launcher.run("sh", ["-c", "echo out; echo err >&2; exit 3"]), { exitCode: 3, signal: null, stdout: "", stderr: "err\n" });
    t.deepEqual(await launcher.run("sh", ["-c", "printf 'no newline' >&2"]), { exitCode: 0, signal: null, stdout: "", stderr: "no newline" });
    t.deepEqual(await launcher.run("true", []), { exitCode: 0, signal: null, stdout: "", stderr: "" });
  } finally {
    await launcher.close();
  }
});

test("input and arguments reach the command unexpanded", async (t) => {
  const launcher = new CommandLauncher();
  try {
    const input = "a'b \"c\"\n$HOME `id` $(id)\\n\n\nlast line without newline";
    const echoed = await launcher.run("sh", ["-c", "cat >&2"], input);
    t.is(echoed.stderr, `${input}\n`);
    const args = await launcher.run("sh", ["-c", 'printf "%s|" "$@" >&2', "sh", "it's", "$HOME", "a b", ""]);
    t.is(args.stderr, "it's|$HOME|a b||");
    t.is((await launcher.run("sh", ["-c", "cat >&2"], "")).stderr, "");
  } finally {
    await launcher.close();
  }
});

test("concurrent runs go through one shell, in order, each with its own result", async (t) => {
  const launcher = new CommandLauncher();
  try {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => launcher.run("sh", ["-c", `cat >&2; exit ${i % 5}`], `request ${i}\n`)),
    );
    for (const [i, result] of results.entries()) {
      t.is(result.exitCode, i % 5);
      t.is(result.stderr, `request ${i}\n`);
    }
    const pid = launcher.pid;
    await launcher.run("true", []);
    t.is(launcher.pid, pid, "the same shell serves every request");
  } finally {
    await launcher.close();
  }
});

test("a command killed by a signal reports the signal", async (t) => {
  const launcher = new CommandLauncher();
  try {
    const result = await launcher.run("sh", ["-c", "kill -TERM $$"]);
    t.is(result.exitCode, null);
    t.is(result.signal, "SIGTERM");
  } finally {
    await launcher.close();
  }
});

test("a missing command rejects with ENOENT, a non-executable one with EACCES", async (t) => {
  const launcher = new CommandLauncher();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-launcher-"));
  try {
    const missing = await t.throwsAsync(launcher.run("/nonexistent/iptables-restore", ["--noflush"], "x\n"));
    t.is((missing as NodeJS.ErrnoException).code, "ENOENT");
    t.regex(missing!.message, /cannot run \/nonexistent\/iptables-restore/);
    const notExecutable = path.join(dir, "script");
    fs.writeFileSync(notExecutable, "#!/bin/sh\n", { mode: 0o644 });
    const denied = await t.throwsAsync(launcher.run(notExecutable, []));
    // As root, a file without any x bit is still not executable (EACCES).
    t.is((denied as NodeJS.ErrnoException).code, "EACCES");
    t.is((await launcher.run("true", [])).exitCode, 0, "the shell survives both");
  } finally {
    await launcher.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a shell that died while idle is replaced on the next run, and reaped", async (t) => {
  const launcher = new CommandLauncher();
  try {
    await launcher.run("true", []);
    const first = launcher.pid!;
    process.kill(first, "SIGKILL");
    await until(() => !exists(first), "the killed shell to be reaped");
    t.is((await launcher.run("sh", ["-c", "exit 7"])).exitCode, 7);
    t.not(launcher.pid, first);
  } finally {
    await launcher.close();
  }
});

test("a shell that dies mid-request fails that request only; the next one gets a new shell", async (t) => {
  const launcher = new CommandLauncher();
  try {
    await launcher.run("true", []);
    const first = launcher.pid!;
    const [dying, after] = [launcher.run("sh", ["-c", "kill -KILL $PPID"]), launcher.run("sh", ["-c", "echo fine >&2"])];
    await t.throwsAsync(dying, { message: /command launcher \(\/bin\/sh\) was killed by SIGKILL while running sh/ });
    t.deepEqual(await after, { exitCode: 0, signal: null, stdout: "", stderr: "fine\n" });
    t.not(launcher.pid, first);
    await until(() => !exists(first), "the killed shell to be reaped");
  } finally {
    await launcher.close();
  }
});

test("close lets the request in flight finish, stops the shell, and refuses new runs", async (t) => {
  const launcher = new CommandLauncher();
  const running = launcher.run("sh", ["-c", "sleep 0.2; exit 4"]);
  const queued = launcher.run("sh", ["-c", "exit 5"]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const pid = launcher.pid!;
  await launcher.close();
  t.is((await running).exitCode, 4);
  t.is((await queued).exitCode, 5);
  t.false(exists(pid), "the shell has exited and been reaped");
  t.is(launcher.pid, undefined);
  await t.throwsAsync(launcher.run("true", []), { message: /closed/ });
  await t.notThrowsAsync(launcher.close(), "close is idempotent");
});

test("close SIGKILLs a shell that does not exit on EOF", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-launcher-"));
  const stubborn = path.join(dir, "stubborn-sh");
  // Runs the requests like sh, then ignores EOF and SIGTERM.
  fs.writeFileSync(stubborn, "#!/bin/sh\nsh -s\ntrap '' TERM\nwhile :; do sleep 1; done\n", { mode: 0o755 });
  const launcher = new CommandLauncher({ shell: stubborn, closeGraceMs: 100 });
  try {
    t.is((await launcher.run("sh", ["-c", "exit 2"])).exitCode, 2);
    const pid = launcher.pid!;
    await launcher.close();
    t.false(exists(pid));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("an idle launcher does not keep the process alive, and its shell ends with the process", async (t) => {
  // A separate Node process that runs one command and never closes the launcher: it must exit
  // by itself, and its shell must see EOF and exit too.
  const script = `
    import { CommandLauncher } from ${JSON.stringify(new URL("./command-launcher.ts", import.meta.url).href)};
    const launcher = new CommandLauncher();
    const result = await launcher.run("sh", ["-c", "exit 3"]);
    console.log(JSON.stringify({ exitCode: result.exitCode, shell: launcher.pid }));
  `;
  const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { timeout: 60_000 });
  const { exitCode, shell } = JSON.parse(stdout.trim()) as { exitCode: number; shell: number };
  t.is(exitCode, 3);
  // The orphaned shell is reparented and reaped by init (or the nearest subreaper).
  const exited = () => !exists(shell) || fs.readFileSync(`/proc/${shell}/stat`, "utf8").split(") ")[1]?.startsWith("Z") === true;
  await until(exited, "the shell to exit").catch(() => undefined);
  t.true(exited(), `the launcher's shell ${shell} has exited`);
});
