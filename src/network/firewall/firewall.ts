import type { PortMapping } from "../model/instance-network.js";

/** Link-local, which holds the cloud metadata service (169.254.169.254) and the node's credentials behind it. */
export const DEFAULT_EGRESS_DENY: readonly string[] = ["169.254.0.0/16"];

/**
 * What every instance on the node shares, whatever its kind: its guests' addresses are the
 * pool, and the host side of every guest link (a TAP, a veth) is named `rik...`.
 */
export interface NodeFirewallPolicy {
  /** The guests' prefix: isolated from each other, masqueraded on their way out, hairpinned. */
  readonly pool: string;
  /** Whether 127.0.0.1:<port> on the node reaches the guests' exposed ports. */
  readonly localhost: boolean;
  /** Destinations (IPv4 CIDRs) guests never reach, neither forwarded nor on the node. */
  readonly egressDeny: readonly string[];
}

/**
 * One instance's share of the firewall, owned under its id: its exposed ports, each DNATed
 * from the node's host port (on one node address, or on all of them) to its guest address.
 */
export interface InstanceFirewall {
  readonly instanceId: string;
  readonly guestIp: string;
  readonly ports: readonly PortMapping[];
}

/**
 * The node's packet filter and NAT, as data in and transactions out. A backend renders the
 * node policy it was made with (isolation, egress and its deny list, localhost, hairpin) into
 * node-wide state of its own, and each instance's mappings into per-instance state: how (one
 * chain or many, rules or map elements) is its own business. It owns exactly what it made and
 * reads back only that.
 *
 * Two backends implement it: iptables/ (chains, a DNAT rule per exposed port) and nftables/
 * (one table of our own, a map element per exposed port). The composition root picks one,
 * and after the start reconcile removes what the other left, so that a node moves from one
 * to the other by a restart.
 */
export interface Firewall {
  /** Starts reading the backend's state, so that the reconcile at start finds it read. */
  prefetch(): void;
  /** Adds the instance's mappings, in one transaction. */
  add(instance: InstanceFirewall): Promise<void>;
  /** Removes the instance's mappings, in one transaction; mappings already gone are no error. */
  remove(instance: InstanceFirewall): Promise<void>;
  /**
   * Makes the backend hold exactly the node policy and these instances' mappings: what is
   * missing is added, and what it owns that none of them needs is removed. `instances` are
   * those of every kind, so nothing another strategy made is ever an orphan. Returns the
   * actions taken, by name.
   */
  reconcile(instances: readonly InstanceFirewall[]): Promise<Record<string, number>>;
  /**
   * Removes everything this backend ever made on the node (the node now uses another
   * backend). Returns the actions taken, by name; {} when there was nothing.
   */
  removeAll(): Promise<Record<string, number>>;
  /** Lets a transaction in progress finish, then stops the backend's processes. */
  close(): Promise<void>;
}

/** How an `unusable` reason starts when the backend's binary is not there at all: then it cannot have left anything on the node. */
export const NOT_INSTALLED = "not installed:";

/** The backends a node can run, by the name `--firewall-backend` takes. */
export type FirewallBackendName = "nft" | "iptables";

/** One backend as the composition root sees it. */
export interface FirewallBackend {
  /** Why it cannot work on this node (a binary missing, too old...), or undefined when it can. */
  unusable(): Promise<string | undefined>;
  /**
   * What on this node would defeat it although it works, e.g. another table that drops
   * forwarded packets whatever ours accepts; [] when nothing does.
   */
  conflicts(): Promise<string[]>;
  create(): Firewall;
}
