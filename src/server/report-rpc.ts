import { status } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";
import { logRpc, type RpcOutcome } from "./log-rpc.js";
import type { RpcObserver } from "./rpc-observer.js";

/** An RPC's outcome as its handler knows it: when the call started and ended rather than how long it took. */
export type FinishedRpc = Omit<RpcOutcome, "durationMs"> & {
  /** `performance.now()` when the call started. */
  readonly startedAt: number;
  /** `performance.now()` when its outcome was known; default: when reported. */
  readonly endedAt?: number;
};

/**
 * The one place an RPC's end is reported: its log line, then the observer (metrics),
 * both with the same duration.
 */
export function reportRpc(logger: Logger, observer: RpcObserver | undefined): (rpc: FinishedRpc) => void {
  return ({ startedAt, endedAt, ...outcome }) => {
    const durationMs = (endedAt ?? performance.now()) - startedAt;
    logRpc(logger, { ...outcome, durationMs });
    observer?.rpcFinished?.(outcome.method, status[outcome.code], durationMs / 1000);
  };
}
