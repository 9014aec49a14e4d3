import { status } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";
import { printableInstanceId } from "../network/model/instance-id.js";
import { NetworkError } from "../network/model/network-error.js";

export interface RpcOutcome {
  /** The proto method name, e.g. "Apply". */
  readonly method: string;
  /** Omitted for calls that are not about one instance (List, Watch). */
  readonly instanceId?: string;
  readonly code: status;
  /** From the call's arrival to its status (for Watch: the stream's whole life). */
  readonly durationMs: number;
  readonly error?: unknown;
}

/** Codes that mean the server (not the caller) is at fault, and deserve an operator's attention. */
const serverFaults: ReadonlySet<status> = new Set([status.INTERNAL, status.UNKNOWN, status.DATA_LOSS]);

/**
 * Writes the one log line of an RPC: `{ message: "rpc", method, instance_id, code,
 * duration_ms }` (instance_id as `printableInstanceId` shows it), plus `error` when the call failed and `stack` when the failure is
 * a bug rather than a NetworkError.
 */
export function logRpc(logger: Logger, outcome: RpcOutcome): void {
  const level =
    outcome.code === status.OK || outcome.code === status.CANCELLED
      ? "info"
      : serverFaults.has(outcome.code)
        ? "error"
        : "warn";
  // Checked first: winston formats (timestamps included) even the lines its level then drops.
  if (!logger.isLevelEnabled(level)) return;
  const fields: Record<string, unknown> = {
    method: outcome.method,
    // The raw id is the caller's: an invalid one (huge, with newlines...) is shown cut and escaped.
    instance_id: outcome.instanceId === undefined ? undefined : printableInstanceId(outcome.instanceId),
    code: status[outcome.code],
    duration_ms: Math.round(outcome.durationMs * 1000) / 1000,
  };
  if (outcome.error !== undefined) {
    fields.error = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    if (outcome.error instanceof Error && !(outcome.error instanceof NetworkError)) {
      fields.stack = outcome.error.stack;
    }
  }
  logger.log(level, "rpc", fields);
}
