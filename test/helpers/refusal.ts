/**
 * What "refused" means for the isolation tests: the kernel answered the attempt at once with
 * a TCP RST or an ICMP unreachable, as opposed to dropping it silently. A silent drop shows up
 * as the clients' own "ETIMEDOUT" and is never a refusal, so asserting a refusal asserts that
 * the attempt failed fast without measuring any duration.
 */

/** Socket errors Linux reports for a RST (ECONNREFUSED) or an ICMP port/host/net/admin unreachable. */
export const REFUSAL_CODES: readonly string[] = ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH"];

/** The failure shape shared by `httpGet`, `tcpConnect` and `udpRequest`. */
export interface SocketFailure {
  readonly ok: false;
  /** `ETIMEDOUT` when nothing came back within the client's timeout, else the socket error code. */
  readonly code: string;
  readonly message: string;
}

/** True when `result` failed with a refusal (not a timeout, not a success). */
export function isRefusal(result: { readonly ok: boolean; readonly code?: string }): boolean {
  return !result.ok && result.code !== undefined && REFUSAL_CODES.includes(result.code);
}
