/**
 * The one error type `src/network` throws. The code says what kind of failure it is,
 * so the server edge can map it to a gRPC status without parsing messages.
 */
export type NetworkErrorCode =
  /** The request itself is wrong; nothing was changed on the host. */
  | "invalid-argument"
  /** The instance does not exist. (A kernel object that does not: a KernelError, see isKernelNotFound.) */
  | "not-found"
  /** Something else already holds what the request asked for. */
  | "already-exists"
  /** The request is valid but the current state forbids it (e.g. re-create with another definition). */
  | "failed-precondition"
  /** The address pool (or another finite resource) is used up. */
  | "resource-exhausted"
  /** The workload kind is known but has no strategy yet. */
  | "unimplemented"
  /** The service is shutting down or the kernel is temporarily unavailable. */
  | "unavailable"
  /** A kernel operation failed for a reason the caller cannot fix. */
  | "internal";

export class NetworkError extends Error {
  override readonly name = "NetworkError";
  readonly code: NetworkErrorCode;

  constructor(code: NetworkErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  static is(value: unknown, code?: NetworkErrorCode): value is NetworkError {
    return value instanceof NetworkError && (code === undefined || value.code === code);
  }
}
