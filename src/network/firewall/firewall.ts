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
 * An nftables backend fits as follows. Its one table holds the node policy as fixed rules and
 * sets, e.g. `set egress_deny { type ipv4_addr; flags interval; elements = { 169.254.0.0/16 } }`,
 * and the mappings as elements of two verdict-free maps, keyed on what a packet arrives with:
 *
 *     map ports { type inet_proto . inet_service : ipv4_addr . inet_service; }
 *     map bound_ports { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
 *     chain prerouting { type nat hook prerouting priority dstnat;
 *       dnat ip to ip daddr . meta l4proto . th dport map @bound_ports
 *       fib daddr type local dnat ip to meta l4proto . th dport map @ports; }
 *     chain output { type nat hook output priority -100;
 *       dnat ip to ip daddr . meta l4proto . th dport map @bound_ports
 *       fib daddr type local dnat ip to meta l4proto . th dport map @ports; }
 *
 * (with `--localhost false`, the output chain starts with `ip daddr 127.0.0.0/8 return`),
 * so that the instance `{ guestIp 10.220.0.2, ports [tcp 8080 -> 3000, udp 192.0.2.10:5353 -> 53] }`
 * is added, in one transaction, as
 *
 *     add element inet rik-network ports { tcp . 8080 : 10.220.0.2 . 3000 }
 *     add element inet rik-network bound_ports { 192.0.2.10 . udp . 5353 : 10.220.0.2 . 53 }
 *
 * and removed by the same two lines with `delete element`: a CREATE or DESTROY costs what it
 * changes, whatever else the node holds.
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
  /** Lets a transaction in progress finish, then stops the backend's processes. */
  close(): Promise<void>;
}
