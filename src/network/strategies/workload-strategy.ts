import type { InstanceFirewall } from "../firewall/firewall.js";
import type { InstanceNetwork } from "../model/instance-network.js";
import type { WorkloadDefinition } from "../model/workload-definition.js";
import type { StartDumps } from "../node/node-setup.js";

/**
 * How one workload kind gets its network. Registered per kind in `createNetworkPlane`.
 * The manager drives the steps so that the store records intent before the kernel is
 * touched: admit → prepare → (record "creating") → realize → (record "running").
 *
 * A strategy owns the links it makes, and says which by their names (or a registry of its
 * own): its reconcile removes only links it owns that none of its instances needs, so nothing
 * another strategy made is ever its orphan. The firewall's share of each instance it hands to
 * the firewall (`firewallOf`), which the manager reconciles across every kind at once.
 */
export interface WorkloadStrategy {
  /**
   * Refuses, before anything is recorded or touched, a definition that the node's policy
   * forbids or that conflicts with what is already on the node (e.g. a host port in use).
   */
  admit(instanceId: string, definition: WorkloadDefinition): Promise<void>;
  /**
   * Reserves what the instance needs (addresses, names, ports) and returns its network,
   * "creating". No kernel change, and no await: it re-checks the conflicts `admit` checked.
   */
  prepare(instanceId: string, definition: WorkloadDefinition): InstanceNetwork;
  /**
   * What a CREATE of `definition` would change in the network an instance of this kind
   * already has (e.g. "another exposure"), or undefined when nothing: a repeated CREATE is
   * the same instance when its network would be the same, whatever else of the definition
   * changed, and gets that network back.
   */
  differenceFrom(network: InstanceNetwork, definition: WorkloadDefinition): string | undefined;
  /** Reserves again what a stored record holds, at start. */
  restore(network: InstanceNetwork): void;
  /** Makes the network real in the kernel; on failure leaves the host as it was. */
  realize(network: InstanceNetwork): Promise<void>;
  /** Removes the network from the kernel. Tolerates pieces already gone. */
  teardown(network: InstanceNetwork): Promise<void>;
  /** Frees what `prepare` or `restore` reserved. */
  release(network: InstanceNetwork): void;
  /** The instance's port mappings, as the firewall holds them. */
  firewallOf(network: InstanceNetwork): InstanceFirewall;
  /**
   * Makes the kernel hold exactly these networks' links: re-creates what they lack and removes
   * what the strategy owns that none of them needs. `start` holds the dumps the node setup
   * read, at start only. Returns the actions taken, by name.
   */
  reconcile(networks: readonly InstanceNetwork[], start: StartDumps | undefined): Promise<Record<string, number>>;
  /** Called once the reconcile at start is done, with what the node setup read. */
  started(start: StartDumps): void;
  /** Whether a link of the node is one this strategy makes (so that the pool check at start does not take it for the host's). */
  ownsLink(name: string): boolean;
  /** Figures of the strategy's own, by name (e.g. spare TAPs ready), for the metrics. */
  stats(): Record<string, number>;
}
