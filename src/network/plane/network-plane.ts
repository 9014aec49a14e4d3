import type { ApplyRequest, InstanceNetwork } from "../model/instance-network.js";

/**
 * What the server edge needs from the network plane. The server depends on this
 * interface only, so it never reaches the kernel itself.
 */
export interface NetworkPlane {
  /** CREATE sets the instance's network up, DESTROY tears it down. Both are idempotent. */
  apply(request: ApplyRequest): Promise<InstanceNetwork>;
  /** Throws NetworkError "not-found" for an unknown instance. */
  get(instanceId: string): InstanceNetwork;
  list(): InstanceNetwork[];
  /** Calls `listener` after every change of an instance's network. Returns the unsubscribe function. */
  subscribe(listener: (network: InstanceNetwork) => void): () => void;
  /** Sizes for gauges: the address pool's capacity and use, in /30s. */
  stats(): PlaneStats;
}

export interface PlaneStats {
  readonly poolSize: number;
  readonly poolUsed: number;
  /** Each strategy's own figures, by workload kind. */
  readonly strategies: Readonly<Record<string, Readonly<Record<string, number>>>>;
}
