import { status } from "@grpc/grpc-js";
import { NetworkError, type NetworkErrorCode } from "../network/model/network-error.js";

/** What a grpc-js handler passes to its callback (or emits on a stream) to fail a call. */
export interface RpcStatus {
  readonly code: status;
  readonly details: string;
}

/** The one place where a network-plane failure becomes a gRPC status. */
const statusByNetworkErrorCode: Readonly<Record<NetworkErrorCode, status>> = {
  "invalid-argument": status.INVALID_ARGUMENT,
  "not-found": status.NOT_FOUND,
  "already-exists": status.ALREADY_EXISTS,
  "failed-precondition": status.FAILED_PRECONDITION,
  "resource-exhausted": status.RESOURCE_EXHAUSTED,
  unimplemented: status.UNIMPLEMENTED,
  unavailable: status.UNAVAILABLE,
  internal: status.INTERNAL,
};

/**
 * A NetworkError keeps its message, since the plane wrote it for the caller. Anything
 * else is a bug on our side: the caller gets INTERNAL and a pointer to the service
 * log, where the handler records the stack.
 */
export function statusFromError(error: unknown): RpcStatus {
  if (error instanceof NetworkError) {
    return { code: statusByNetworkErrorCode[error.code], details: error.message };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: status.INTERNAL, details: `internal error: ${message}; see the service log` };
}
