import {
  closeSync,
  constants,
  existsSync,
  fdatasync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../logger.js";
import { CoalescingQueue } from "../concurrency/coalescing-queue.js";
import type { InstanceNetwork } from "../model/instance-network.js";
import { NetworkError } from "../model/network-error.js";

/**
 * What the store keeps per instance. `status` is the write-ahead intent: "creating" and
 * "destroying" mean the operation may have been cut short, "running" that CREATE was
 * acknowledged.
 */
export interface InstanceRecord {
  readonly instanceId: string;
  readonly kind: string;
  /**
   * A digest of the whole definition, written by versions that compared it on a repeated
   * CREATE. Ignored: what makes a CREATE the same instance is its network, which `network`
   * holds (WorkloadStrategy.differenceFrom).
   */
  readonly digest?: string;
  readonly status: "creating" | "running" | "destroying";
  /** Allocation, TAP, MAC and ports, exactly as returned to the caller. */
  readonly network: InstanceNetwork;
}

const FORMAT = 1;
const JOURNAL = "instances.journal";
/** Where versions before the journal kept one file per instance; migrated at load. */
const LEGACY_DIRECTORY = "instances";
const LEGACY_SUFFIX = ".json";
/** The journal is rewritten with only the live records once it holds this many lines and 4 per live record. */
const COMPACT_MIN_LINES = 4096;

type JournalLine = { readonly format: number; readonly put: InstanceRecord } | { readonly format: number; readonly remove: string };

function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** The state directory cannot be opened or read: the service cannot start on it. */
function unusable(stateDir: string, error: unknown): NetworkError {
  const advice = isDiskFull(error) ? "free space on it, then start again" : "check --state-dir";
  return new NetworkError("unavailable", `cannot use state directory ${stateDir}: ${(error as Error).message}; ${advice}`, { cause: error });
}

/** A write that did not reach the journal: nothing was changed, so the caller may retry once the cause is fixed. */
function unwritable(stateDir: string, what: string, error: unknown): NetworkError {
  const full = isDiskFull(error);
  return new NetworkError(
    "unavailable",
    `cannot record ${what} in state directory ${stateDir} (--state-dir): ${(error as Error).message}; ` +
      (full ? "free space on it, then retry" : "check that file system (free space, errors in the kernel log), then retry"),
    { cause: error },
  );
}

/**
 * The instance records, as an append-only journal `<stateDir>/instances.journal`: one JSON
 * line per put or remove, the last line of an instance winning. Why a journal rather than a
 * file per instance (the layout before, migrated at load): a record update was an open, a
 * write, a close, a rename over the old record (which ext4 makes flush the new data at once)
 * and two fsyncs, about 1 ms of mostly synchronous file system calls, twice per CREATE; and
 * a restart read 5000 files. Here an update is one write(2) of a line to the page cache, and
 * durable writes of concurrent operations share one fdatasync.
 *
 * A kill -9 at any instant leaves whole lines and at most one line cut short at the end,
 * which load drops (that write was not acknowledged). Durable writes are fdatasynced before
 * they resolve, so they survive a power cut too; intents need not be ("crash-safe"), since a
 * power cut takes the kernel state they describe with it. The journal is compacted at load
 * and whenever it holds 4 lines per live record: the live lines go to a temporary file,
 * fsynced and renamed over it. Compaction is never needed for correctness (but to migrate
 * an older version's files): when it fails (a full disk), the journal stays as it was.
 */
export class InstanceStore {
  readonly path: string;
  private readonly stateDir: string;
  private readonly logger: Logger | undefined;
  private readonly directoryFd: number;
  private fd: number;
  /** Bytes in the journal: where a failed append is cut back to. */
  private size: number;
  private lines: number;
  /** The last line of each live instance: what compaction writes. */
  private readonly live = new Map<string, string>();
  /** Concurrent durable writes share one fdatasync (and compaction runs between them). */
  private readonly sync: CoalescingQueue<void>;
  /**
   * Removals the journal could not take: written before the next line (whatever its
   * instance), by `writePending`, or made moot by the next compaction, which omits them as
   * they are gone from `live`. Until then the journal holds a record that is gone, which a
   * restart would act on.
   */
  private readonly pendingRemovals = new Set<string>();

  private constructor(stateDir: string, directoryFd: number, logger: Logger | undefined) {
    this.stateDir = stateDir;
    this.logger = logger;
    this.path = join(stateDir, JOURNAL);
    this.directoryFd = directoryFd;
    this.fd = openSync(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
    this.size = fstatSync(this.fd).size;
    this.lines = 0;
    this.sync = new CoalescingQueue(async () => {
      const fd = this.fd;
      await new Promise<void>((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
      if (this.lines < COMPACT_MIN_LINES || this.lines < 4 * this.live.size) return;
      try {
        this.compact();
      } catch {
        // The journal is intact and what was just synced is on disk: compaction waits for the next sync.
      }
    });
  }

  /** `logger` hears of what the store works around (a compaction a full disk refused). */
  static open(stateDir: string, options: { readonly logger?: Logger } = {}): InstanceStore {
    let directoryFd: number | undefined;
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      directoryFd = openSync(stateDir, "r");
      return new InstanceStore(stateDir, directoryFd, options.logger);
    } catch (error) {
      if (directoryFd !== undefined) closeSync(directoryFd);
      throw unusable(stateDir, error);
    }
  }

  /**
   * Every record: the journal replayed over what an older version left in per-instance
   * files. A line cut short at the end (a kill mid-write) is cut off, which takes no space;
   * the journal is then compacted when that saves lines, which needs space: on a full disk
   * that fails, and the journal is used as it is (logged; compaction is retried as it grows),
   * so that a full disk never stops the service from starting. Only migrating the files of
   * an older version must compact (they are removed once the journal holds them all), and
   * when it cannot, the start stops with UNAVAILABLE.
   */
  load(): InstanceRecord[] {
    const records = new Map<string, InstanceRecord>();
    const legacy = join(this.stateDir, LEGACY_DIRECTORY);
    let migrating: boolean;
    let complete: string;
    try {
      // What a compaction cut short left: never read, as the rename over the journal is what commits one.
      rmSync(this.temporaryPath, { force: true });
      migrating = existsSync(legacy);
      if (migrating) for (const record of loadLegacy(legacy)) records.set(record.instanceId, record);
      const bytes = readFileSync(this.path);
      const end = bytes.lastIndexOf(0x0a) + 1;
      // A line cut short by a kill: that write was never acknowledged.
      if (end !== bytes.length) ftruncateSync(this.fd, end);
      this.size = end;
      complete = bytes.toString("utf8", 0, end);
    } catch (error) {
      throw error instanceof NetworkError ? error : unusable(this.stateDir, error);
    }
    const lines = complete === "" ? [] : complete.slice(0, -1).split("\n");
    lines.forEach((line, at) => {
      const entry = parseLine(line, `${this.path} line ${at + 1}`);
      if ("put" in entry) records.set(entry.put.instanceId, entry.put);
      else records.delete(entry.remove);
    });
    // Removals this process could not write yet are removals all the same.
    for (const instanceId of this.pendingRemovals) records.delete(instanceId);
    this.live.clear();
    for (const record of records.values()) this.live.set(record.instanceId, lineOf({ format: FORMAT, put: record }));
    this.lines = lines.length;
    if (migrating) {
      try {
        this.compact();
        rmSync(legacy, { recursive: true, force: true });
      } catch (error) {
        throw unusable(this.stateDir, error);
      }
    } else if (this.lines > this.live.size) {
      try {
        this.compact();
      } catch (error) {
        this.logger?.warn(`cannot compact the journal in state directory ${this.stateDir}; starting from it as it is (compaction is retried as it grows)`, {
          state_dir: this.stateDir,
          error: (error as Error).message,
        });
      }
    }
    return [...records.values()];
  }

  /**
   * Appends the record; "durable" resolves once it is on disk. The write itself is
   * synchronous: a line to the page cache takes microseconds, where a trip through libuv's
   * threads costs more and would queue behind the fdatasyncs.
   */
  async put(record: InstanceRecord, durability: "durable" | "crash-safe" = "durable"): Promise<void> {
    const what = `instance "${record.instanceId}" (${record.status})`;
    const line = lineOf({ format: FORMAT, put: record });
    let carried: number;
    try {
      carried = this.append(line);
    } catch (error) {
      throw unwritable(this.stateDir, what, error);
    }
    this.live.set(record.instanceId, line);
    if (durability === "durable") await this.synced(what);
    // Removals are durable when first written: carried by a crash-safe line, they are synced
    // all the same, without holding the caller (a failure leaves them to the next sync).
    else if (carried > 0) this.sync.submit().catch(() => undefined);
  }

  /**
   * Forgets the record, then appends its removal. The record leaves the live set first, so
   * that no compaction writes it back. When the line cannot be written, the removal is kept
   * pending (`pendingRemovals`) and written as soon as the journal takes a line again.
   */
  async remove(instanceId: string): Promise<void> {
    if (!this.live.delete(instanceId)) return;
    const what = `the removal of instance "${instanceId}"`;
    try {
      this.append(lineOf({ format: FORMAT, remove: instanceId }));
    } catch (error) {
      this.pendingRemovals.add(instanceId);
      throw unwritable(this.stateDir, what, error);
    }
    await this.synced(what);
  }

  /** Writes the removals that could not be written before, durably; does nothing when there are none. */
  async writePending(): Promise<void> {
    if (this.pendingRemovals.size === 0) return;
    const what = `the removal of ${[...this.pendingRemovals].map((id) => `instance "${id}"`).join(", ")}`;
    try {
      this.append("");
    } catch (error) {
      throw unwritable(this.stateDir, what, error);
    }
    await this.synced(what);
  }

  private async synced(what: string): Promise<void> {
    try {
      await this.sync.submit();
    } catch (error) {
      throw unwritable(this.stateDir, what, error);
    }
  }

  private get temporaryPath(): string {
    return `${this.path}.tmp`;
  }

  close(): void {
    closeSync(this.fd);
    closeSync(this.directoryFd);
  }

  /**
   * One write(2) of the pending removals, then `line`: the journal holds them all or, after
   * a failure, none of them (and the removals stay pending). Returns how many removals it
   * carried.
   */
  private append(line: string): number {
    const removals = [...this.pendingRemovals];
    const bytes = Buffer.from(removals.map((instanceId) => lineOf({ format: FORMAT, remove: instanceId })).join("") + line);
    try {
      const written = writeSync(this.fd, bytes);
      if (written !== bytes.length) {
        // What write(2) does when the file system fills up in the middle of a line.
        throw Object.assign(new Error(`short write to ${this.path} (${written} of ${bytes.length} bytes): no space left on device`), { code: "ENOSPC" });
      }
    } catch (error) {
      try {
        ftruncateSync(this.fd, this.size);
      } catch {
        // The line cut short stays last, and load drops it.
      }
      throw error;
    }
    this.pendingRemovals.clear();
    this.size += bytes.length;
    this.lines += removals.length + (line === "" ? 0 : 1);
    return removals.length;
  }

  /**
   * Equivalent to: `cat live > instances.journal.tmp && sync instances.journal.tmp && mv
   * instances.journal.tmp instances.journal && sync .` Synchronous, so that no write lands
   * in the old journal after the copy; it runs at load and once every 3 writes per record.
   */
  private compact(): void {
    const temporary = this.temporaryPath;
    const text = [...this.live.values()].join("");
    let next: number | undefined;
    try {
      const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
      try {
        writeFileSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      next = openSync(temporary, constants.O_WRONLY | constants.O_APPEND);
      renameSync(temporary, this.path);
    } catch (error) {
      if (next !== undefined) closeSync(next);
      // Half written, it must not take space (the disk may be what is full) nor be mistaken for a journal.
      rmSync(temporary, { force: true });
      throw error;
    }
    // Gone from `live`, so not in the new journal: nothing of them is left to write.
    this.pendingRemovals.clear();
    // From the rename on, appends must go to the new journal, whatever fails next.
    closeSync(this.fd);
    this.fd = next;
    this.size = Buffer.byteLength(text);
    this.lines = this.live.size;
    fsyncSync(this.directoryFd);
  }
}

function lineOf(entry: JournalLine): string {
  return `${JSON.stringify(entry)}\n`;
}

function parseLine(line: string, where: string): JournalLine {
  let entry: Partial<{ format: number; put: InstanceRecord; remove: string }>;
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch (error) {
    throw new NetworkError("internal", `state file ${where} is unreadable (${(error as Error).message}); fix or delete that line and restart`, {
      cause: error,
    });
  }
  if (entry.format === FORMAT && typeof entry.put?.instanceId === "string") return { format: FORMAT, put: entry.put };
  if (entry.format === FORMAT && typeof entry.remove === "string") return { format: FORMAT, remove: entry.remove };
  throw new NetworkError("internal", `state file ${where} is not a format-${FORMAT} put or remove; fix or delete that line and restart`);
}

/** The per-instance files of versions before the journal: `<id>.json`, written through `<id>.json.tmp`. */
function loadLegacy(directory: string): InstanceRecord[] {
  const records: InstanceRecord[] = [];
  for (const name of readdirSync(directory)) {
    if (!name.endsWith(LEGACY_SUFFIX)) continue;
    const path = join(directory, name);
    let parsed: { format?: number; record?: InstanceRecord };
    try {
      parsed = JSON.parse(readFileSync(path, "utf8")) as typeof parsed;
    } catch (error) {
      throw new NetworkError("internal", `state file ${path} is unreadable (${(error as Error).message}); move it away and restart`, { cause: error });
    }
    if (parsed.format !== FORMAT || parsed.record?.instanceId !== name.slice(0, -LEGACY_SUFFIX.length)) {
      throw new NetworkError("internal", `state file ${path} is not a format-${FORMAT} record of its instance; move it away and restart`);
    }
    records.push(parsed.record);
  }
  return records;
}
