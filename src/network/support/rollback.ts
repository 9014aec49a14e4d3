import type { Logger } from "../../logger.js";

/** One step of undoing a failed operation, named for the log line it gets when it fails too. */
export interface UndoStep {
  readonly name: string;
  readonly run: () => unknown;
}

/** Why a step of a rollback failed, attached to the error that caused the rollback. */
export interface RollbackFailure {
  readonly step: string;
  readonly error: unknown;
}

const ROLLBACK_FAILURES = Symbol("rollbackFailures");

/** The steps that failed while undoing the operation `error` ended; empty when the rollback was whole. */
export function rollbackFailuresOf(error: unknown): readonly RollbackFailure[] {
  if (typeof error !== "object" || error === null) return [];
  return (error as { [ROLLBACK_FAILURES]?: RollbackFailure[] })[ROLLBACK_FAILURES] ?? [];
}

/**
 * Undoes a failed operation: runs every step in order, even after one fails, logs each step
 * that fails, and rethrows `original`, the error that made the operation fail (what the
 * caller must see), with the failed steps attached (`rollbackFailuresOf`). An error of a
 * step never replaces it: it says only that the undo was incomplete, and a step left
 * undone would otherwise leave the steps after it undone too.
 */
export async function rollBack(original: unknown, steps: readonly UndoStep[], context: { readonly logger: Logger; readonly instanceId: string }): Promise<never> {
  const failures: RollbackFailure[] = [];
  for (const step of steps) {
    try {
      await step.run();
    } catch (error) {
      failures.push({ step: step.name, error });
      // With --resync-interval 0 there is no resync: the next start's reconcile is the one.
      context.logger.warn("a rollback step failed; the next reconcile (the resync, or the next start) or a DESTROY removes what it left", {
        instance_id: context.instanceId,
        step: step.name,
        error: error instanceof Error ? error.message : String(error),
        original_error: original instanceof Error ? original.message : String(original),
      });
    }
  }
  if (failures.length > 0 && typeof original === "object" && original !== null) {
    const earlier = rollbackFailuresOf(original);
    Object.defineProperty(original, ROLLBACK_FAILURES, { value: [...earlier, ...failures], configurable: true });
  }
  throw original;
}
