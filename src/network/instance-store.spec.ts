import test from "ava";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
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

test("records survive a reopen; a put replaces, a remove deletes", async (t) => {
  const { dir, store } = tempStore(t);
  await store.put(record("a", "creating"));
  await store.put(record("a", "running"));
  await store.put(record("b"));
  await store.remove("b");
  await store.remove("never-there");
  store.close();
  const reopened = InstanceStore.open(dir);
  t.deepEqual(reopened.load(), [record("a", "running")]);
  t.is(statSync(join(dir, "instances", "a.json")).mode & 0o777, 0o600);
  t.is(statSync(join(dir, "instances")).mode & 0o777, 0o700);
});

test("a write cut short before its rename leaves the old record, and its temporary file is cleaned up", async (t) => {
  const { dir, store } = tempStore(t);
  await store.put(record("a", "running"));
  writeFileSync(join(dir, "instances", "a.json.tmp"), '{"format":1,"record":{"instanceId":"a","sta');
  t.deepEqual(store.load(), [record("a", "running")]);
  t.deepEqual(readdirSync(join(dir, "instances")), ["a.json"]);
});

test("an unreadable record stops the load with a message naming the file", (t) => {
  const { dir, store } = tempStore(t);
  writeFileSync(join(dir, "instances", "x.json"), "not json");
  const error = t.throws(() => store.load(), { instanceOf: NetworkError });
  t.regex(error.message, /instances\/x\.json is unreadable/);
  writeFileSync(join(dir, "instances", "x.json"), JSON.stringify({ format: 1, record: record("y") }));
  t.regex(t.throws(() => store.load())?.message ?? "", /not a format-1 record of its instance/);
  t.is(JSON.parse(readFileSync(join(dir, "instances", "x.json"), "utf8")).record.instanceId, "y", "left in place for the operator");
});

test("an unusable state directory is a clear error", (t) => {
  const { dir } = tempStore(t);
  writeFileSync(join(dir, "file"), "");
  const error = t.throws(() => InstanceStore.open(join(dir, "file")), { instanceOf: NetworkError });
  t.regex(error.message, /cannot use state directory .*file.*check --state-dir/);
});
