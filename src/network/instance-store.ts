import { closeSync, fsync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CoalescingQueue } from "./coalescing-queue.js";
import type { InstanceNetwork } from "./instance-network.js";
import { NetworkError } from "./network-error.js";

/**
 * What the store keeps per instance. `status` is the write-ahead intent: "creating" and
 * "destroying" mean the operation may have been cut short, "running" that CREATE was
 * acknowledged.
 */
export interface InstanceRecord {
  readonly instanceId: string;
  readonly kind: string;
  /** Digest of the parsed definition: a repeated CREATE with the same one is a no-op. */
  readonly digest: string;
  readonly status: "creating" | "running" | "destroying";
  /** Allocation, TAP, MAC and ports, exactly as returned to the caller. */
  readonly network: InstanceNetwork;
}

const FORMAT = 1;
const SUFFIX = ".json";
const TEMPORARY = ".tmp";

/**
 * One JSON file per instance under `<stateDir>/instances`. Each write goes to a temporary
 * file renamed over the record: a kill -9 at any instant leaves the old record or the new
 * one. Durable writes are also fsynced (file, then directory), so that they survive a
 * power cut too; intents need not be, since a power cut takes the kernel state they
 * describe with it.
 */
export class InstanceStore {
  readonly directory: string;
  private readonly directoryFd: number;
  /** Concurrent writes share one directory fsync: the journal commits them together anyway. */
  private readonly directorySync: CoalescingQueue<void>;

  private constructor(directory: string) {
    this.directory = directory;
    const fd = openSync(directory, "r");
    this.directoryFd = fd;
    this.directorySync = new CoalescingQueue(
      () => new Promise<void>((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve()))),
    );
  }

  static open(stateDir: string): InstanceStore {
    const directory = join(stateDir, "instances");
    try {
      mkdirSync(directory, { recursive: true, mode: 0o700 });
      return new InstanceStore(directory);
    } catch (error) {
      throw new NetworkError("unavailable", `cannot use state directory ${stateDir}: ${(error as Error).message}; check --state-dir`, {
        cause: error,
      });
    }
  }

  /** Every record; temporary files of writes cut short are removed. */
  load(): InstanceRecord[] {
    const records: InstanceRecord[] = [];
    for (const name of readdirSync(this.directory)) {
      const path = join(this.directory, name);
      if (name.endsWith(TEMPORARY)) {
        rmSync(path, { force: true });
      } else if (name.endsWith(SUFFIX)) {
        let parsed: { format?: number; record?: InstanceRecord };
        try {
          parsed = JSON.parse(readFileSync(path, "utf8")) as typeof parsed;
        } catch (error) {
          throw new NetworkError("internal", `state file ${path} is unreadable (${(error as Error).message}); move it away and restart`, {
            cause: error,
          });
        }
        if (parsed.format !== FORMAT || parsed.record?.instanceId !== name.slice(0, -SUFFIX.length)) {
          throw new NetworkError("internal", `state file ${path} is not a format-${FORMAT} record of its instance; move it away and restart`);
        }
        records.push(parsed.record);
      }
    }
    return records;
  }

  /**
   * The fsyncs are asynchronous, so that those of concurrent operations overlap instead of
   * holding the event loop one after another. The rest is synchronous: writing a record of a
   * few hundred bytes to the page cache and renaming it take tens of microseconds, where each
   * trip through libuv's four threads costs more and queues behind the fsyncs.
   */
  async put(record: InstanceRecord, durability: "durable" | "crash-safe" = "durable"): Promise<void> {
    const path = this.pathOf(record.instanceId);
    const temporary = path + TEMPORARY;
    const text = JSON.stringify({ format: FORMAT, record });
    if (durability === "crash-safe") {
      writeFileSync(temporary, text, { mode: 0o600 });
      renameSync(temporary, path);
      return;
    }
    const fd = openSync(temporary, "w", 0o600);
    try {
      writeSync(fd, text);
      await new Promise<void>((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve())));
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
    await this.directorySync.submit();
  }

  async remove(instanceId: string): Promise<void> {
    rmSync(this.pathOf(instanceId), { force: true });
    await this.directorySync.submit();
  }

  close(): void {
    closeSync(this.directoryFd);
  }

  /** Instance ids are validated to a filename-safe alphabet that cannot start with a dot. */
  private pathOf(instanceId: string): string {
    return join(this.directory, instanceId + SUFFIX);
  }
}
