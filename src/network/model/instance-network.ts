/** Lifecycle of one instance's network, mirrored by `common.ResourceStatus` at the edge. */
export type InstanceStatus = "creating" | "running" | "destroying" | "terminated" | "failed";

export type Protocol = "tcp" | "udp";

/** One exposed port: traffic to the node's `hostPort` is DNATed to the guest's `guestPort`. */
export interface PortMapping {
  readonly protocol: Protocol;
  readonly hostPort: number;
  readonly guestPort: number;
  /** The one node address the port is bound to; every local address when absent. */
  readonly hostIp?: string;
}

/** What a VMM needs to attach a Function's microVM to its TAP. */
export interface FunctionNetwork {
  readonly tapName: string;
  /** Host side of the /30: the guest's gateway. */
  readonly hostIp: string;
  readonly guestIp: string;
  readonly prefixLength: number;
  /** `prefixLength` as a dotted mask, e.g. 255.255.255.252. */
  readonly mask: string;
  readonly guestMac: string;
  readonly mtu: number;
  readonly ports: readonly PortMapping[];
  /** Kernel command-line argument: `ip=<guest>::<host>:<mask>::eth0:off`. */
  readonly bootArg: string;
}

interface InstanceNetworkBase {
  readonly instanceId: string;
  readonly status: InstanceStatus;
}

/** A Function instance: a microVM behind its TAP. */
export interface FunctionInstanceNetwork extends InstanceNetworkBase {
  readonly kind: "Function";
  readonly function: FunctionNetwork;
}

/** What a DESTROY of an id the node never knew answers: nothing about it is known, not even its kind. */
export interface UnknownInstanceNetwork extends InstanceNetworkBase {
  readonly kind: "";
}

/** An instance's network, by its workload kind: each kind's strategy adds its own member. */
export type InstanceNetwork = FunctionInstanceNetwork | UnknownInstanceNetwork;

/** A kind that has a network of its own. */
export type NetworkKind = Exclude<InstanceNetwork["kind"], "">;

export type ApplyAction = "create" | "destroy";

export interface ApplyRequest {
  readonly instanceId: string;
  /** RIK's JSON workload definition. Ignored for destroy. */
  readonly definition: string;
  readonly action: ApplyAction;
}
