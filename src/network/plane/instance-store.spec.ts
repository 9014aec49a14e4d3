import test from "ava";
import { functionNetwork } from "../../../test/fixtures/function-network.js";
import type fs from "node:fs";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { captureLogger } from "../../../test/helpers/capture-logger.js";
import { diskFull, enospc, patchFs } from "../../../test/helpers/fs-faults.js";
import { InstanceStore, type InstanceRecord } from "./instance-store.js";
import { NetworkError } from "../model/network-error.js";

function record(instanceId: string, status: InstanceRecord["status"] = "running"): InstanceRecord {
  return { instanceId, kind: "Function", status, network: functionNetwork(instanceId, status) };
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

test("a journal written by an older version, with a digest in each record, loads", (t) => {
  const { dir, store } = tempStore(t);
  t.teardown(() => store.close());
  const old = { ...record("a"), digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" };
  writeFileSync(join(dir, "instances.journal"), `${JSON.stringify({ format: 1, put: old })}\n`);
  t.like(store.load()[0], record("a"));
});

test("a compaction file left by a crash is never read, and is removed at start", async (t) => {
  const { dir, store } = tempStore(t);
  await store.put(record("a"));
  store.close();
  // Whole lines of a record that the journal does not hold, then one cut short.
  writeFileSync(join(dir, "instances.journal.tmp"), `${JSON.stringify({ format: 1, put: record("ghost") })}\n{"format":1,"put":{"inst`);
  const reopened = InstanceStore.open(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(reopened.load(), [record("a")]);
  t.false(existsSync(join(dir, "instances.journal.tmp")));
});

/** Every compaction fails as on a full disk: its temporary file can be neither written nor synced. */
function compactionsFail(t: { teardown(fn: () => void): void }) {
  patchFs(t, "writeFileSync", () => () => {
    throw enospc("write");
  });
  patchFs(t, "fsyncSync", () => () => {
    throw enospc("fsync");
  });
}

test.serial("a compaction that fails at load removes its half-written file, leaves the journal as it was, and the load goes on", async (t) => {
  const { dir, store } = tempStore(t);
  t.teardown(() => store.close());
  await store.put(record("a", "creating"), "crash-safe");
  await store.put(record("a"));
  const before = readFileSync(store.path, "utf8");
  let tried = false;
  patchFs(t, "fsyncSync", () => () => {
    tried = true;
    throw enospc("fsync");
  });
  const { logger, lines } = captureLogger();
  const reopened = InstanceStore.open(dir, { logger });
  t.teardown(() => reopened.close());
  // Two lines for one record: load compacts, and cannot.
  t.deepEqual(reopened.load(), [record("a")]);
  t.true(tried, "the test's premise: load tried to compact");
  t.false(existsSync(join(dir, "instances.journal.tmp")), "no half-written compaction left behind");
  t.is(readFileSync(store.path, "utf8"), before);
  t.like(lines, [{ level: "warn", state_dir: dir }]);
  t.true(String(lines[0]?.["message"]).includes(`state directory ${dir}`), String(lines[0]?.["message"]));
  t.regex(String(lines[0]?.["error"]), /ENOSPC/);
});

test.serial("on a full disk, load cuts off a line cut short without compacting, and the journal takes lines again once there is room", async (t) => {
  const { dir, store } = tempStore(t);
  await store.put(record("a", "creating"), "crash-safe");
  await store.put(record("a"));
  store.close();
  const whole = readFileSync(join(dir, "instances.journal"), "utf8");
  appendFileSync(join(dir, "instances.journal"), '{"format":1,"put":{"instanceId":"b","sta');
  compactionsFail(t);
  let full = true;
  diskFull(t, () => full);
  const reopened = InstanceStore.open(dir);
  t.deepEqual(reopened.load(), [record("a")]);
  t.is(readFileSync(reopened.path, "utf8"), whole, "the line cut short is gone, the whole lines are as they were");
  full = false;
  await reopened.put(record("c"));
  reopened.close();
  const again = InstanceStore.open(dir);
  t.teardown(() => again.close());
  t.deepEqual(again.load(), [record("a"), record("c")]);
});

test.serial("migrating an older version's files needs a compaction: when the disk refuses it, the start stops with UNAVAILABLE naming the directory, and the files stay", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "rik-store-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "instances"));
  writeFileSync(join(dir, "instances", "a.json"), JSON.stringify({ format: 1, record: record("a") }));
  const store = InstanceStore.open(dir);
  t.teardown(() => store.close());
  compactionsFail(t);
  const error = t.throws(() => store.load(), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
  t.regex(error.message, new RegExp(`^cannot use state directory ${dir}: ENOSPC.*; free space on it, then start again$`));
  t.true(existsSync(join(dir, "instances", "a.json")), "the older version's file is kept until the journal holds it");
});

test.serial("a journal that cannot be read stops the load with UNAVAILABLE naming the directory, not a raw error", (t) => {
  const { dir, store } = tempStore(t);
  t.teardown(() => store.close());
  patchFs(t, "readFileSync", () => () => {
    throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
  });
  const error = t.throws(() => store.load(), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
  t.regex(error.message, new RegExp(`^cannot use state directory ${dir}: EIO.*; check --state-dir$`));
});

test.serial("a put the state directory cannot take is UNAVAILABLE, names the directory, and changes nothing", async (t) => {
  const { dir, store } = tempStore(t);
  t.teardown(() => store.close());
  await store.put(record("a"));
  const before = readFileSync(store.path, "utf8");
  let full = true;
  diskFull(t, () => full);
  const error = await t.throwsAsync(store.put(record("a", "destroying"), "crash-safe"), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
  t.true(error.message.includes(`state directory ${dir}`), error.message);
  t.regex(error.message, /instance "a" \(destroying\).*ENOSPC.*free space on it, then retry/);
  t.is(readFileSync(store.path, "utf8"), before);
  full = false;
  await store.put(record("b"));
  t.deepEqual(store.load(), [record("a"), record("b")], "the record put before the failure is still the live one");
});

test.serial("a write cut short (a short write(2)) is cut back out of the journal and reported as a full disk", async (t) => {
  const { store } = tempStore(t);
  t.teardown(() => store.close());
  await store.put(record("a"));
  const before = readFileSync(store.path, "utf8");
  patchFs(t, "writeSync", (original) => ((fd: number, buffer: Buffer) => original(fd, buffer.subarray(0, 10))) as typeof original);
  const error = await t.throwsAsync(store.put(record("b")), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
  t.regex(error.message, /short write.*free space on it/);
  t.is(readFileSync(store.path, "utf8"), before, "no partial line left");
});

/** A store holding "a" and "b", on a disk that is full until `free()`. */
async function twoRecordsOnFullDisk(t: { teardown(fn: () => void): void }) {
  const { dir, store } = tempStore(t);
  await store.put(record("a"));
  await store.put(record("b"));
  let full = true;
  diskFull(t, () => full);
  return { dir, store, free: () => void (full = false) };
}

test.serial("a remove that cannot be written forgets the record anyway, and is written before the next line", async (t) => {
  const { dir, store, free } = await twoRecordsOnFullDisk(t);
  const error = await t.throwsAsync(store.remove("a"), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
  t.regex(error.message, /the removal of instance "a"/);
  await t.notThrowsAsync(store.remove("a"), "already forgotten");
  await t.throwsAsync(store.put(record("c"), "crash-safe"), { instanceOf: NetworkError }, "still full: neither is written");
  free();
  let synced = 0;
  patchFs(t, "fdatasync", (original) => ((fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
    synced++;
    original(fd, callback);
  }) as typeof fs.fdatasync);
  // Crash-safe: no compaction, no sync of its own. The removal goes first, in the same write.
  await store.put(record("c"), "crash-safe");
  t.deepEqual(journalLines(store).slice(-2).map((line) => JSON.parse(line)), [{ format: 1, remove: "a" }, { format: 1, put: record("c") }]);
  t.is(synced, 1, "a removal is synced even when the line that carries it need not be");
  store.close();
  const reopened = InstanceStore.open(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(reopened.load().map((r) => r.instanceId), ["b", "c"]);
});

test.serial("writePending writes the removals the disk refused, once it has room, and nothing otherwise", async (t) => {
  const { dir, store, free } = await twoRecordsOnFullDisk(t);
  await t.throwsAsync(store.remove("a"));
  await t.throwsAsync(store.remove("b"));
  const refused = await t.throwsAsync(store.writePending(), { instanceOf: NetworkError });
  t.is(refused.code, "unavailable");
  t.regex(refused.message, /the removal of instance "a", instance "b" in state directory .*free space on it/);
  free();
  await store.writePending();
  const lines = journalLines(store);
  t.deepEqual(lines.slice(-2).map((line) => JSON.parse(line)), [{ format: 1, remove: "a" }, { format: 1, remove: "b" }]);
  await store.writePending();
  t.is(journalLines(store).length, lines.length, "nothing left to write");
  store.close();
  const reopened = InstanceStore.open(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(reopened.load(), []);
});

test.serial("a failed fdatasync fails the durable put as UNAVAILABLE", async (t) => {
  const { store } = tempStore(t);
  t.teardown(() => store.close());
  patchFs(t, "fdatasync", () => ((_fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => callback(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }))) as typeof fs.fdatasync);
  const error = await t.throwsAsync(store.put(record("a")), { instanceOf: NetworkError });
  t.is(error.code, "unavailable");
  t.regex(error.message, /EIO.*check that file system/);
});
