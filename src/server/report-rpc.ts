import { status } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";
import { logRpc, type RpcOutcome } from "./log-rpc.js";
import type { RpcObserver } from "./rpc-observer.js";

/** An RPC's outcome as its handler knows it: when the call started rather than how long it took. */
export type FinishedRpc = Omit<RpcOutcome, "durationMs"> & {
  /** `performance.now()` when the call started. */
  readonly startedAt: number;
};

/**
 * The one place an RPC's end is reported: its log line, then the observer (metrics),
 * both with the same duration.
 */
export function reportRpc(logger: Logger, observer: RpcObserver | undefined): (rpc: FinishedRpc) => void {
  return ({ startedAt, ...outcome }) => {
    const durationMs = performance.now() - startedAt;
    logRpc(logger, { ...outcome, durationMs });
    observer?.rpcFinished?.(outcome.method, status[outcome.code], durationMs / 1000);
  };
}
