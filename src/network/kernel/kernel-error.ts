import { NetworkError } from "../model/network-error.js";

/** What rtnetlink answers when the object of a request is not there. */
const NOT_FOUND_ERRNOS: Readonly<Record<string, string>> = {
  ENODEV: "no such device",
  ESRCH: "no such object",
  EADDRNOTAVAIL: "no such address",
};

/**
 * A kernel operation that failed, with the errno the kernel gave. Its code is "internal":
 * a kernel object that is missing in the middle of an operation is a failure of the node,
 * not the API's NOT_FOUND, which means "no such instance". Code that tolerates absence
 * (a delete of what is already gone) asks `isKernelNotFound`.
 */
export class KernelError extends NetworkError {
  /** The errno name, e.g. "ENODEV"; undefined when the failure carried none (a timeout...). */
  readonly errno: string | undefined;

  /**
   * `detail` stands in for the errno when there is none; `reason`, the kernel's (or a
   * library's) own words, follows the errno either way.
   */
  constructor(operation: string, errno: string | undefined, options?: { cause?: unknown; detail?: string; reason?: string }) {
    const errnoText = errno === undefined ? (options?.detail ?? "unknown error") : `${errno}${errno in NOT_FOUND_ERRNOS ? ` (${NOT_FOUND_ERRNOS[errno]})` : ""}`;
    const reason = options?.reason === undefined ? errnoText : `${errnoText}: ${options.reason}`;
    super("internal", `${operation} failed: ${reason}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.errno = errno;
  }
}

/** Whether `error` is the kernel saying that the object of the operation does not exist. */
export function isKernelNotFound(error: unknown): error is KernelError {
  return error instanceof KernelError && error.errno !== undefined && error.errno in NOT_FOUND_ERRNOS;
}
