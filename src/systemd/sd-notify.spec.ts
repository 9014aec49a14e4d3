import test from "ava";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sdNotify } from "./sd-notify.js";

/** A stand-in for systemd-notify that records its arguments and $NOTIFY_SOCKET. */
async function fakeNotifier(t: { teardown(fn: () => unknown): void }, exitCode = 0) {
  const dir = await mkdtemp(join(tmpdir(), "rik-network-notify-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const command = join(dir, "systemd-notify");
  const record = join(dir, "record");
  await writeFile(command, `#!/bin/sh\nprintf '%s\\n' "$NOTIFY_SOCKET" "$@" > ${record}\necho "refused" >&2\nexit ${exitCode}\n`);
  await chmod(command, 0o755);
  return { command, record: () => readFile(record, "utf8") };
}

test("without $NOTIFY_SOCKET (not started by systemd as Type=notify) it does nothing", async (t) => {
  const notifier = await fakeNotifier(t);
  t.false(await sdNotify({ READY: "1" }, { env: {}, command: notifier.command }));
  await t.throwsAsync(notifier.record(), { code: "ENOENT" });
});

test("sends each assignment to systemd-notify, with the manager's socket", async (t) => {
  const notifier = await fakeNotifier(t);
  t.true(await sdNotify({ READY: "1", STATUS: "serving on /run/x.sock" }, { env: { NOTIFY_SOCKET: "/run/systemd/notify" }, command: notifier.command }));
  t.is(await notifier.record(), "/run/systemd/notify\nREADY=1\nSTATUS=serving on /run/x.sock\n");
});

test("a failing notifier is an error that shows the command and its stderr", async (t) => {
  const notifier = await fakeNotifier(t, 1);
  await t.throwsAsync(sdNotify({ READY: "1" }, { env: { NOTIFY_SOCKET: "@notify" }, command: notifier.command }), {
    message: `cannot notify systemd (${notifier.command} READY=1): refused`,
  });
});
