/**
 * Told once per RPC of the WorkloadNetwork service, when it ends, so that metrics can
 * count and time the calls without the server knowing about them. Must not throw.
 */
export interface RpcObserver {
  /** `method` is the proto name ("Apply"), `code` the gRPC status name ("OK", "NOT_FOUND"). */
  rpcFinished?(method: string, code: string, durationSeconds: number): void;
}
