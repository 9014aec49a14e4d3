import { readFile, writeFile } from "node:fs/promises";
import { NetworkError } from "./network-error.js";

function path(key: string): string {
  return `/proc/sys/${key.replaceAll(".", "/")}`;
}

/**
 * Equivalent to: `sysctl -w $key=$value` (in the current network namespace for net.*).
 * Skips the write when already set; returns whether it wrote.
 */
export async function sysctlSet(key: string, value: string): Promise<boolean> {
  try {
    if ((await readFile(path(key), "utf8")).trim() === value) return false;
    await writeFile(path(key), value);
    return true;
  } catch (error) {
    throw new NetworkError("internal", `setting ${key}=${value} failed: ${(error as Error).message}`, { cause: error });
  }
}
