import { CoalescingQueue } from "../concurrency/coalescing-queue.js";
import { isKernelNotFound } from "./kernel-error.js";
import type { Rtnetlink } from "./rtnetlink/rtnetlink.js";

/**
 * Link group the TAPs about to be deleted are moved to, so that concurrent deletions go
 * in one `ip link del group`. Reserved for rik-network: nothing else on a node should use it.
 */
export const DOOMED_TAP_GROUP = 0x52494b;

function ignoreNotFound(error: unknown): void {
  if (!isKernelNotFound(error)) throw error;
}

/**
 * Deletes TAPs, coalescing concurrent deletions: unregistering a device costs an RCU
 * grace period (~30 ms), unregistering a group of them costs one for all.
 * Tolerates TAPs that are already gone.
 */
export class TapDeleter {
  private readonly queue: CoalescingQueue<string>;

  constructor(rtnetlink: Rtnetlink) {
    this.queue = new CoalescingQueue(async (names) => {
      if (names.length === 1) {
        await rtnetlink.linkDel(names[0]!).catch(ignoreNotFound);
        return;
      }
      let moved = 0;
      await Promise.all(names.map((name) => rtnetlink.linkSetGroup(name, DOOMED_TAP_GROUP).then(() => moved++, ignoreNotFound)));
      if (moved > 0) await rtnetlink.linkDelGroup(DOOMED_TAP_GROUP);
    });
  }

  /** Equivalent to: `ip link del dev $name`, batched with the deletions that arrive meanwhile. */
  delete(name: string): Promise<void> {
    return this.queue.submit(name);
  }
}
