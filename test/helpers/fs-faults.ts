/**
 * File system faults for unit tests: replaces a function of node:fs, for the named imports of
 * the code under test too (syncBuiltinESMExports), until the test ends. Only for `test.serial`
 * tests: the replacement is process-wide, and serial tests run alone.
 */
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";

type FsFunctions = {
  [K in keyof typeof fs as (typeof fs)[K] extends (...args: never[]) => unknown ? K : never]: (typeof fs)[K];
};

/** An error as node:fs gives it when the file system is full. */
export function enospc(syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}`), { code: "ENOSPC", errno: -28, syscall });
}

/** `fs[name]` becomes `replace(original)` until the test's teardown. */
export function patchFs<K extends keyof FsFunctions>(
  t: { teardown(fn: () => void): void },
  name: K,
  replace: (original: FsFunctions[K]) => FsFunctions[K],
): void {
  const target = fs as unknown as Record<string, unknown>;
  const original = target[name] as FsFunctions[K];
  target[name] = replace(original);
  syncBuiltinESMExports();
  t.teardown(() => {
    target[name] = original;
    syncBuiltinESMExports();
  });
}

/** Every write(2) through `fs.writeSync` fails as on a full disk while `full()` holds, until the test's teardown. */
export function diskFull(t: { teardown(fn: () => void): void }, full: () => boolean = () => true): void {
  patchFs(t, "writeSync", (original) => ((...args: Parameters<typeof original>) => {
    if (full()) throw enospc("write");
    return original(...args);
  }) as typeof original);
}
