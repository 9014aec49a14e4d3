import fs from "node:fs";
import test from "ava";
import { fakeIptablesRestore as fakeRestore } from "../../../../test/helpers/fake-iptables-restore.js";
import { Iptables } from "./iptables.js";
import { NetworkError } from "../../model/network-error.js";

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
  const error = await t.throwsAsync(iptables.restore("*filter\n-A BAD\nCOMMIT\n"), { instanceOf: NetworkError });
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

test("with session: true, restores go to one long-lived iptables-restore --noflush --verbose", async (t) => {
  const fake = fakeRestore(t);
  const { calls, observer } = observed();
  const iptables = new Iptables({ restoreCommand: fake.command, session: true, observer });
  t.teardown(() => iptables.close());
  await iptables.restore("*filter\n-A RIKLET-FORWARD -s 10.220.0.2/32 -j ACCEPT\nCOMMIT\n");
  await iptables.restore("*nat\n-A RIKLET-PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 10.220.0.2:80\nCOMMIT\n");
  t.is(fake.runs(), 1, "one process for both batches");
  t.is(fake.args(), "--noflush --verbose\n");
  t.regex(fake.input(), /^\*filter\n-A RIKLET-FORWARD .*\nCOMMIT\n# rik-ack \S+ 1\n\*nat\n-A RIKLET-PREROUTING .*\nCOMMIT\n# rik-ack \S+ 2\n$/);
  t.deepEqual(calls, [true, true]);
  await iptables.close();
  t.false(fs.existsSync(`/proc/${fake.pids()[0]}`), "close() ends the process");
});

test("with session: true, a refused batch fails with the line number within the batch, and the next one runs", async (t) => {
  const fake = fakeRestore(t);
  const iptables = new Iptables({ restoreCommand: fake.command, session: true, lockRetries: 2 });
  t.teardown(() => iptables.close());
  await iptables.restore("*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n");
  const error = await t.throwsAsync(iptables.restore("*filter\n-A BAD\nCOMMIT\n"), { instanceOf: NetworkError });
  t.is(error!.message, `${fake.command} failed: iptables-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?).`);
  await t.throwsAsync(iptables.restore("*filter\n# LOCKED\nCOMMIT\n"), { message: /holding the xtables lock/ });
  await iptables.restore("*filter\nCOMMIT\n");
  t.is(fake.runs(), 3, "a new process after each failure, and no retry on the lock message");
});

test("with session: true, a batch that deletes is exec'd, so that its cleanup is not left to the next batch", async (t) => {
  const fake = fakeRestore(t);
  const iptables = new Iptables({ restoreCommand: fake.command, session: true });
  t.teardown(() => iptables.close());
  await iptables.restore("*nat\n-A RIKLET-P15 -p tcp --dport 8080 -j DNAT --to-destination 10.220.0.2:80\nCOMMIT\n");
  await iptables.restore("*nat\n-D RIKLET-P15 -p tcp --dport 8080 -j DNAT --to-destination 10.220.0.2:80\nCOMMIT\n");
  t.is(fake.args(), "--noflush --wait 5\n");
  await iptables.restore("*nat\n-A RIKLET-P15 -p tcp --dport 8081 -j DNAT --to-destination 10.220.0.2:80\nCOMMIT\n");
  t.is(fake.runs(), 2, "the session, one exec, then the same session");
});

test("without the session option, the session is used when iptables-restore --version says nf_tables", async (t) => {
  const nft = fakeRestore(t, { backend: "nf_tables" });
  const legacy = fakeRestore(t);
  for (const [fake, args] of [
    [nft, "--noflush --verbose\n"],
    [legacy, "--noflush --wait 5\n"],
  ] as const) {
    const iptables = new Iptables({ restoreCommand: fake.command });
    t.teardown(() => iptables.close());
    await Promise.all([iptables.restore("*filter\nCOMMIT\n"), iptables.restore("*nat\nCOMMIT\n")]);
    t.is(fake.args(), args);
    t.is(fake.runs(), fake === nft ? 1 : 2);
  }
});

test("with session: false, iptables-restore is exec'd for each batch without asking for its version", async (t) => {
  const fake = fakeRestore(t, { backend: "nf_tables" });
  const iptables = new Iptables({ restoreCommand: fake.command, session: false });
  t.teardown(() => iptables.close());
  await iptables.restore("*filter\nCOMMIT\n");
  await iptables.restore("*filter\nCOMMIT\n");
  t.is(fake.args(), "--noflush --wait 5\n");
  t.is(fake.runs(), 2);
});
