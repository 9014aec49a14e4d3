/**
 * Named points between the steps of CREATE and DESTROY, where a test may crash the process
 * to prove that a crash between any two steps is recovered from. Production code installs
 * no hook, so a fault point does nothing; a test installs one before the service starts
 * (test/helpers/kill-at-step.ts, preloaded with `node --import`).
 */
export type FaultHook = (step: string) => void;

let hook: FaultHook | undefined;

/** Installs the function called at every fault point, with its step name; undefined removes it. */
export function setFaultHook(next: FaultHook | undefined): void {
  hook = next;
}

export function faultPoint(step: string): void {
  hook?.(step);
}
