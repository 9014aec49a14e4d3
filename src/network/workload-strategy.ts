import type { InstanceNetwork } from "./instance-network.js";
import type { WorkloadDefinition } from "./workload-definition.js";

/** How one workload kind gets its network. Registered per kind in `createNetworkPlane`. */
export interface WorkloadStrategy {
  /** Prepares the node once, before serving. Must be idempotent: the node may already be set up. */
  setupNode(): Promise<void>;
  /**
   * Refuses, before anything is announced or touched, a definition that conflicts with
   * instances already on the node (e.g. a host port in use). `create` checks again.
   */
  admit(instanceId: string, definition: WorkloadDefinition): void;
  /** Sets up the instance's network and returns it "running"; on failure leaves the host as it was. */
  create(instanceId: string, definition: WorkloadDefinition): Promise<InstanceNetwork>;
  /** Tears down everything `create` made. Tolerates pieces already gone. */
  destroy(network: InstanceNetwork): Promise<void>;
}
