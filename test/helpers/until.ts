import { delay } from "./netns.js";

/**
 * Polls `check` until it returns a value, and returns it; throws, naming `what`, once
 * `timeoutMs` has passed. For state the kernel or the service reaches on its own time (a
 * resync, IPv6 autoconfiguration): the bound only ends a test that would otherwise hang.
 */
export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`still waiting for ${what} after ${timeoutMs} ms`);
    await delay(200);
  }
}
