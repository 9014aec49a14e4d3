import test from "ava";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InstanceStore, type InstanceRecord } from "./instance-store.js";
import { NetworkError } from "./network-error.js";

function record(instanceId: string, status: InstanceRecord["status"] = "running"): InstanceRecord {
  return { instanceId, kind: "Function", digest: "d1", status, network: { instanceId, kind: "Function", status } };
}

function tempStore(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), "rik-store-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, store: InstanceStore.open(dir) };
}

function journalLines(store: InstanceStore): string[] {
  return readFileSync(store.path, "utf8").split("\n").filter(Boolean);
}

test("records survive a reopen; a put replaces, a remove deletes", async (t) => {
  const { dir, store } = tempStore(t);
  await store.put(record("a", "creating"), "crash-safe");
  await store.put(record("a", "running"));
  await store.put(record("b"));
  await store.remove("b");
  await store.remove("never-there");
  store.close();
  const reopened = InstanceStore.open(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(reopened.load(), [record("a", "running")]);
  t.is(statSync(reopened.path).mode & 0o777, 0o600);
  t.deepEqual(journalLines(reopened).length, 1, "compacted at load: one line per live record");
});

test("a write cut short at the end of the journal is dropped, and the journal is whole again", async (t) => {
  const { dir, store } = tempStore(t);
  await store.put(record("a", "running"));
  store.close();
  appendFileSync(join(dir, "instances.journal"), '{"format":1,"put":{"instanceId":"b","sta');
  const reopened = InstanceStore.open(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(reopened.load(), [record("a", "running")]);
  t.true(readFileSync(reopened.path, "utf8").endsWith("\n"));
  await reopened.put(record("c"));
  t.deepEqual(
    journalLines(reopened).map((line) => JSON.parse(line).put.instanceId),
    ["a", "c"],
  );
});

test("an unreadable line stops the load with a message naming the file and the line", (t) => {
  const { dir, store } = tempStore(t);
  t.teardown(() => store.close());
  writeFileSync(join(dir, "instances.journal"), `${JSON.stringify({ format: 1, put: record("a") })}\nnot json\n`);
  const error = t.throws(() => store.load(), { instanceOf: NetworkError });
  t.regex(error.message, /instances\.journal line 2 is unreadable/);
  writeFileSync(join(dir, "instances.journal"), `${JSON.stringify({ format: 2, put: record("a") })}\n`);
  t.regex(t.throws(() => store.load())?.message ?? "", /line 1 is not a format-1 put or remove/);
  t.true(readFileSync(join(dir, "instances.journal"), "utf8").includes('"format":2'), "left in place for the operator");
});

test("the per-instance files of an older version are migrated into the journal, then removed", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "rik-store-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "instances"));
  writeFileSync(join(dir, "instances", "a.json"), JSON.stringify({ format: 1, record: record("a") }));
  writeFileSync(join(dir, "instances", "b.json"), JSON.stringify({ format: 1, record: record("b", "destroying") }));
  writeFileSync(join(dir, "instances", "c.json.tmp"), '{"format":1,"rec');
  const store = InstanceStore.open(dir);
  t.deepEqual(
    store.load().sort((x, y) => x.instanceId.localeCompare(y.instanceId)),
    [record("a"), record("b", "destroying")],
  );
  store.close();
  t.false(existsSync(join(dir, "instances")));
  const reopened = InstanceStore.open(dir);
  t.teardown(() => reopened.close());
  t.is(reopened.load().length, 2);
});

test("an unreadable file of an older version stops the load and is left in place", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "rik-store-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "instances"));
  writeFileSync(join(dir, "instances", "x.json"), "not json");
  const store = InstanceStore.open(dir);
  t.teardown(() => store.close());
  t.regex(t.throws(() => store.load(), { instanceOf: NetworkError }).message, /instances\/x\.json is unreadable/);
  t.true(existsSync(join(dir, "instances", "x.json")));
});

test("the journal is compacted as it grows: it never holds more than a few lines per live record", async (t) => {
  const { dir, store } = tempStore(t);
  store.load();
  await store.put(record("kept"));
  // 4500 lines, past the compaction threshold of 4096.
  for (let i = 0; i < 1500; i++) {
    await store.put(record(`x${i}`, "creating"), "crash-safe");
    await store.put(record(`x${i}`), "crash-safe");
    await store.remove(`x${i}`);
  }
  t.true(journalLines(store).length < 4096, `${journalLines(store).length} lines`);
  store.close();
  const reopened = InstanceStore.open(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(reopened.load(), [record("kept")]);
});

test("an unusable state directory is a clear error", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "rik-store-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "file"), "");
  const error = t.throws(() => InstanceStore.open(join(dir, "file")), { instanceOf: NetworkError });
  t.regex(error.message, /cannot use state directory .*file.*check --state-dir/);
});
