import { CoalescingQueue } from "../../concurrency/coalescing-queue.js";
import { chainKey, parseIptablesSave, renderRestore, ruleKey, type Rule, type RuleBatch, type SavedRules } from "./iptables-rules.js";

function merge(batches: readonly RuleBatch[]): RuleBatch {
  return {
    createChains: batches.flatMap((b) => b.createChains ?? []),
    flushChains: batches.flatMap((b) => b.flushChains ?? []),
    delete: batches.flatMap((b) => b.delete ?? []),
    insert: batches.flatMap((b) => b.insert ?? []),
    append: batches.flatMap((b) => b.append ?? []),
    deleteChains: batches.flatMap((b) => b.deleteChains ?? []),
  };
}

/**
 * What of `batch` the kernel does not hold yet, given what iptables-save shows: chains and
 * rules to add that are missing, rules and chains to delete that are present. Appends to a
 * chain the batch flushes are all kept, since the flush empties it first. Pure.
 */
export function remainingOf(batch: RuleBatch, saved: SavedRules): RuleBatch {
  const present = new Set(saved.rules.map(ruleKey));
  const flushed = new Set((batch.flushChains ?? []).map(chainKey));
  const inFlushed = (rule: Rule) => flushed.has(chainKey({ table: rule.table, name: rule.chain }));
  return {
    createChains: (batch.createChains ?? []).filter((chain) => !saved.chains.has(chainKey(chain))),
    flushChains: (batch.flushChains ?? []).filter((chain) => saved.chains.has(chainKey(chain))),
    delete: (batch.delete ?? []).filter((rule) => present.has(ruleKey(rule)) && !inFlushed(rule)),
    insert: (batch.insert ?? []).filter((rule) => !present.has(ruleKey(rule))),
    append: (batch.append ?? []).filter((rule) => inFlushed(rule) || !present.has(ruleKey(rule))),
    deleteChains: (batch.deleteChains ?? []).filter((chain) => saved.chains.has(chainKey(chain))),
  };
}

/**
 * Coalesces the rule changes of concurrent operations into one iptables-restore. The
 * kernel charges a transaction, not a rule (nf_tables: ~15 ms for any one that deletes).
 *
 * A restore is atomic per table only: iptables-restore commits each table's block on its
 * own, so a failed restore may have applied its nat part and not its filter part. After a
 * failure, each batch of it is therefore retried alone for what is left of it, read from
 * iptables-save: appends are never doubled, and deletes of rules already gone do not fail.
 */
export class RestoreBatcher {
  private readonly queue: CoalescingQueue<RuleBatch>;

  constructor(restore: (text: string) => Promise<void>, save: () => Promise<string>) {
    this.queue = new CoalescingQueue(
      (batches) => restore(renderRestore(merge(batches))),
      async (batch) => {
        const text = renderRestore(remainingOf(batch, parseIptablesSave(await save())));
        if (text !== "") await restore(text);
      },
    );
  }

  /** Resolves once `batch` is applied; an empty one (an instance that exposes nothing) waits for nothing. */
  submit(batch: RuleBatch): Promise<void> {
    if (renderRestore(batch) === "") return Promise.resolve();
    return this.queue.submit(batch);
  }
}
