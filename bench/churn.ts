/**
 * Sustained churn: CREATE+DESTROY cycles back to back with a fixed number in flight, as a node
 * starting and stopping microVMs at its top rate would send them. Each slot runs its cycles one
 * after the other (a new instance id every time, the slot's host port); the cycles of all slots
 * overlap. The calls are injected, so that the loop and its arithmetic are unit-tested without a
 * service.
 */

export interface ChurnCalls {
  /** CREATE of cycle `cycle` of slot `slot`. */
  create(slot: number, cycle: number): Promise<unknown>;
  /** DESTROY of the same instance. */
  destroy(slot: number, cycle: number): Promise<unknown>;
}

export interface ChurnOptions {
  readonly inFlight: number;
  /** No cycle starts once this much time has passed; the cycles in flight then finish. */
  readonly durationMs: number;
  /** Clock in ms; performance.now by default. */
  readonly now?: () => number;
}

export interface ChurnResult {
  readonly inFlight: number;
  /** From the first call to the end of the last cycle: the denominator of the rate. */
  readonly elapsedMs: number;
  /** Cycles whose CREATE and DESTROY both succeeded. */
  readonly cycles: number;
  /** Every CREATE and DESTROY that succeeded, timed around the call. */
  readonly createMs: number[];
  readonly destroyMs: number[];
  /** Completed cycles in each second from the start (the last one may be partial). */
  readonly perSecond: number[];
  /** Every failed call, as `create|destroy slot/cycle: message`. */
  readonly failures: string[];
}

/**
 * Runs `inFlight` slots until `durationMs` has passed. A CREATE that fails is followed by its
 * DESTROY all the same (a DESTROY of an instance that is not there is answered as done), so that
 * a failure leaves nothing behind that the next cycles would run into.
 */
export async function runChurn(calls: ChurnCalls, options: ChurnOptions): Promise<ChurnResult> {
  const now = options.now ?? (() => performance.now());
  const createMs: number[] = [];
  const destroyMs: number[] = [];
  const failures: string[] = [];
  const completedAt: number[] = [];
  const started = now();
  const timed = async (what: "create" | "destroy", slot: number, cycle: number, into: number[]): Promise<boolean> => {
    const before = now();
    try {
      await calls[what](slot, cycle);
      into.push(now() - before);
      return true;
    } catch (error) {
      failures.push(`${what} ${slot}/${cycle}: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  };
  const slot = async (index: number) => {
    for (let cycle = 0; now() - started < options.durationMs; cycle++) {
      const created = await timed("create", index, cycle, createMs);
      const destroyed = await timed("destroy", index, cycle, destroyMs);
      if (created && destroyed) completedAt.push(now() - started);
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, (_, index) => slot(index)));
  const elapsedMs = now() - started;
  const perSecond = Array.from({ length: Math.max(1, Math.ceil(elapsedMs / 1000)) }, () => 0);
  for (const at of completedAt) perSecond[Math.min(perSecond.length - 1, Math.floor(at / 1000))]! += 1;
  return { inFlight: options.inFlight, elapsedMs, cycles: completedAt.length, createMs, destroyMs, perSecond, failures };
}

/** Completed cycles per second over the whole churn. */
export function churnRate(result: Pick<ChurnResult, "cycles" | "elapsedMs">): number {
  return result.elapsedMs > 0 ? (result.cycles * 1000) / result.elapsedMs : 0;
}

/**
 * The fewest cycles completed in one whole second, which shows a stall (a reconcile, a slow
 * kernel commit) that the average hides. The last second is left out when it is partial;
 * undefined when no second is whole.
 */
export function slowestSecond(result: Pick<ChurnResult, "perSecond" | "elapsedMs">): number | undefined {
  const whole = Math.floor(result.elapsedMs / 1000);
  const seconds = result.perSecond.slice(0, whole);
  return seconds.length === 0 ? undefined : Math.min(...seconds);
}
