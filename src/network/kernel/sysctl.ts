import { readFileSync, writeFileSync } from "node:fs";
import { NetworkError } from "../model/network-error.js";

function path(key: string): string {
  return `/proc/sys/${key.replaceAll(".", "/")}`;
}

/**
 * Equivalent to: `sysctl -w $key=$value` (in the current network namespace for net.*).
 * Skips the write when already set; returns whether it wrote. Synchronous on purpose: a
 * /proc/sys access takes ~50 us, while a trip through libuv's four threads queues behind
 * the store's fsyncs and costs ~1 ms.
 */
export function sysctlSet(key: string, value: string): boolean {
  try {
    if (readFileSync(path(key), "utf8").trim() === value) return false;
    writeFileSync(path(key), value);
    return true;
  } catch (error) {
    throw new NetworkError("internal", `setting ${key}=${value} failed: ${(error as Error).message}`, { cause: error });
  }
}
