import { NetworkError } from "./network-error.js";

/**
 * Exposure entries one instance may have, by default: each is a DNAT in the create's batch
 * and a port in the instance's journal line, so a definition with thousands of them would
 * make one CREATE cost what thousands do.
 */
export const DEFAULT_MAX_PORTS_PER_INSTANCE = 64;
/** A host port per protocol is the most an instance could ever expose. */
export const MAX_PORTS_PER_INSTANCE_LIMIT = 65535;

/** Refuses an exposure longer than the node's limit (`--max-ports-per-instance`). */
export function checkExposureCount(count: number, limit: number): void {
  if (count <= limit) return;
  throw new NetworkError(
    "invalid-argument",
    `spec.function.exposure has ${count} entries, more than the ${limit} an instance may have on this node (--max-ports-per-instance); ` +
      "expose fewer ports, or raise the limit",
  );
}
