// TEMPORARY instrumentation (restart profiling): ms since process start, per named step.
export const marks: Record<string, number> = {};
export function mark(name: string): void {
  if (process.env.RIK_TIMING !== undefined) marks[name] = Math.round(performance.now());
}
