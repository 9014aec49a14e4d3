import { CoalescingQueue } from "./coalescing-queue.js";
import { renderRestore, type RuleBatch } from "./iptables-rules.js";

function merge(batches: readonly RuleBatch[]): RuleBatch {
  return {
    createChains: batches.flatMap((b) => b.createChains ?? []),
    delete: batches.flatMap((b) => b.delete ?? []),
    insert: batches.flatMap((b) => b.insert ?? []),
    append: batches.flatMap((b) => b.append ?? []),
  };
}

/**
 * Coalesces the rule changes of concurrent operations into one iptables-restore. The
 * kernel charges a transaction, not a rule (nf_tables: ~15 ms for any one that deletes),
 * and a merged restore is still atomic: if it fails, none of it was applied, and each
 * batch is retried alone.
 */
export class RestoreBatcher {
  private readonly queue: CoalescingQueue<RuleBatch>;

  constructor(restore: (text: string) => Promise<void>) {
    this.queue = new CoalescingQueue((batches) => restore(renderRestore(merge(batches))));
  }

  submit(batch: RuleBatch): Promise<void> {
    return this.queue.submit(batch);
  }
}
