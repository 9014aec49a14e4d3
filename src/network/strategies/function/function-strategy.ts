import type { Logger } from "../../../logger.js";
import type { Firewall, InstanceFirewall } from "../../firewall/firewall.js";
import type { Conntrack } from "../../kernel/conntrack.js";
import type { FunctionNetwork, InstanceNetwork, PortMapping } from "../../model/instance-network.js";
import { guestMacFor, isTapName, tapNameFor } from "../../model/instance-naming.js";
import { parseIpv4 } from "../../model/ipv4-cidr.js";
import { NetworkError } from "../../model/network-error.js";
import type { WorkloadDefinition } from "../../model/workload-definition.js";
import type { HostPorts } from "../../node/host-ports.js";
import type { NodeSetup, StartDumps } from "../../node/node-setup.js";
import { faultPoint } from "../../support/fault-point.js";
import { rollBack } from "../../support/rollback.js";
import type { WorkloadStrategy } from "../workload-strategy.js";
import type { FunctionTaps } from "./function-taps.js";
import { isDoomedTapName } from "./retired-taps.js";
import { isSpareTapName, type SpareTaps } from "./spare-taps.js";

export interface FunctionStrategyOptions {
  /** The pool the /30s come from, and the MTU of the TAPs. */
  readonly node: NodeSetup;
  readonly hostPorts: HostPorts;
  readonly firewall: Firewall;
  readonly taps: FunctionTaps;
  readonly spares: SpareTaps;
  readonly conntrack: Conntrack;
  readonly logger: Logger;
}

export function bootArg(guestIp: string, hostIp: string, mask: string): string {
  return `ip=${guestIp}::${hostIp}:${mask}::eth0:off`;
}

function portsOf(definition: WorkloadDefinition): PortMapping[] {
  return (definition.spec.function?.exposure ?? []).map(({ protocol, port, targetPort, hostIP }) => ({
    protocol,
    hostPort: port,
    guestPort: targetPort,
    ...(hostIP === undefined ? {} : { hostIp: hostIP }),
  }));
}

function functionOf(network: InstanceNetwork): FunctionNetwork {
  // A stored record is trusted as far as its kind: one without its Function part is refused here, not at its first use.
  if (network.kind !== "Function" || network.function === undefined) {
    throw new NetworkError("internal", `instance "${network.instanceId}" has no Function network`);
  }
  return network.function;
}

function udpPortsOf(network: InstanceNetwork): PortMapping[] {
  return functionOf(network).ports.filter((port) => port.protocol === "udp");
}

/**
 * A Function runs as a Firecracker microVM behind a host TAP: one /30 from the node's pool,
 * a persistent TAP with the host address (FunctionTaps), and the firewall's mapping of each
 * exposed port.
 */
export class FunctionStrategy implements WorkloadStrategy {
  private readonly options: FunctionStrategyOptions;
  /** Which instance owns each TAP name, to refuse the (unlikely) hash collision. */
  private readonly tapOwners = new Map<string, string>();

  constructor(options: FunctionStrategyOptions) {
    this.options = options;
  }

  /** The spares are made once the node is in shape; those a previous run left are deleted. */
  started(start: StartDumps): void {
    this.options.spares.start(start.links);
  }

  /** Instance TAPs, spares and retired TAPs: what FunctionTaps makes. */
  ownsLink(name: string): boolean {
    return isTapName(name) || isSpareTapName(name) || isDoomedTapName(name);
  }

  stats(): Record<string, number> {
    return { spare_taps: this.options.spares.size };
  }

  /**
   * Refuses more ports than the node allows an instance, what the port policy forbids, what
   * `claim` refuses, a hostIP that is not the node's, and a host port that a socket on the
   * node receives on (the DNAT would silently take its traffic).
   */
  async admit(instanceId: string, definition: WorkloadDefinition): Promise<void> {
    const ports = portsOf(definition);
    this.options.hostPorts.checkPolicy(ports);
    this.claim(instanceId, ports);
    await this.options.hostPorts.checkNode(ports);
  }

  /** Refuses, with no await, what conflicts with other instances: their host ports and TAP names. */
  private claim(instanceId: string, ports: readonly PortMapping[]): void {
    this.options.hostPorts.checkFree(instanceId, ports);
    const tapName = tapNameFor(instanceId);
    const tapOwner = this.tapOwners.get(tapName);
    if (tapOwner !== undefined && tapOwner !== instanceId) {
      throw new NetworkError(
        "already-exists",
        `TAP name ${tapName} of instance "${instanceId}" collides with instance "${tapOwner}"; use another instance id`,
      );
    }
  }

  prepare(instanceId: string, definition: WorkloadDefinition): InstanceNetwork {
    // Checked again with no await before the reservations, so concurrent creates cannot both pass.
    this.claim(instanceId, portsOf(definition));
    const allocation = this.options.node.pool.allocate(instanceId);
    const network: InstanceNetwork = {
      instanceId,
      kind: "Function",
      status: "creating",
      function: {
        tapName: tapNameFor(instanceId),
        hostIp: allocation.hostIp,
        guestIp: allocation.guestIp,
        prefixLength: allocation.prefixLength,
        mask: allocation.mask,
        guestMac: guestMacFor(instanceId),
        mtu: this.options.node.mtu,
        ports: portsOf(definition),
        bootArg: bootArg(allocation.guestIp, allocation.hostIp, allocation.mask),
      },
    };
    this.reserve(network);
    return network;
  }

  /** Ports compared as a set of (protocol, host IP, host port, guest port): their order in the definition does not matter. */
  differenceFrom(network: InstanceNetwork, definition: WorkloadDefinition): string | undefined {
    const key = (port: PortMapping) => `${port.protocol} ${port.hostIp ?? "*"} ${port.hostPort} ${port.guestPort}`;
    const has = functionOf(network).ports.map(key).sort();
    const wanted = portsOf(definition).map(key).sort();
    return has.length === wanted.length && has.every((port, at) => port === wanted[at]) ? undefined : "another exposure";
  }

  restore(network: InstanceNetwork): void {
    this.options.node.pool.reserve(this.slotOf(functionOf(network).hostIp), network.instanceId);
    this.reserve(network);
  }

  firewallOf(network: InstanceNetwork): InstanceFirewall {
    const { guestIp, ports } = functionOf(network);
    return { instanceId: network.instanceId, guestIp, ports };
  }

  async realize(network: InstanceNetwork): Promise<void> {
    const fn = functionOf(network);
    const { firewall, taps } = this.options;
    // The mappings do not need the TAP to exist, so both go at once. The mappings first: a
    // backend that works in its own process (iptables-restore) does so while this thread makes
    // the TAP's kernel calls.
    const mapped = firewall.add(this.firewallOf(network));
    const [tap, added] = await Promise.allSettled([taps.add(fn), mapped]);
    if (tap.status === "fulfilled" && added.status === "fulfilled") {
      faultPoint("create: TAP and rules added");
      await this.flushUdpFlows(network);
      return;
    }
    // Undo whatever was added: all of the mappings, or the part of them a failed transaction
    // committed, and the TAP, whatever it got to. The caller sees what failed first.
    return rollBack(tap.status === "rejected" ? tap.reason : (added as PromiseRejectedResult).reason, [
      { name: "delete the rules", run: () => firewall.remove(this.firewallOf(network)) },
      { name: `delete TAP ${fn.tapName}`, run: () => taps.delete(fn.tapName) },
    ], { logger: this.options.logger, instanceId: network.instanceId });
  }

  /**
   * Best effort: the rules are in place either way, and a stale flow only lasts until its
   * conntrack entry times out (30 s after its last packet), so a failure is logged, not thrown.
   */
  private async flushUdpFlows(network: InstanceNetwork): Promise<void> {
    for (const port of udpPortsOf(network)) {
      try {
        await this.options.conntrack.delete({ protocol: "udp", port: port.hostPort, ...(port.hostIp === undefined ? {} : { address: port.hostIp }) });
      } catch (error) {
        this.options.logger.warn("flushing stale UDP flows failed; they end when their conntrack entries expire", {
          instance_id: network.instanceId,
          port: port.hostPort,
          error: (error as Error).message,
        });
      }
    }
  }

  /**
   * Resolves once the mappings are gone and the TAP is unusable (down, without its address, no
   * longer under the instance's name): its deletion, an RCU grace period, goes on in the
   * background (FunctionTaps.retire), so a CREATE of the same instance can follow at once.
   */
  async teardown(network: InstanceNetwork): Promise<void> {
    // Independent kernel objects, so both go at once; both are awaited whatever either does,
    // so that a DESTROY retried after a failure never finds this one's retirement still going.
    const unmapped = this.options.firewall.remove(this.firewallOf(network)).then(() => faultPoint("destroy: rules removed"));
    const [removed, retired] = await Promise.allSettled([unmapped, this.options.taps.retire(functionOf(network), { instanceId: network.instanceId })]);
    if (removed.status === "rejected") throw removed.reason;
    if (retired.status === "rejected") throw retired.reason;
    faultPoint("destroy: rules removed and TAP retired");
    await this.flushUdpFlows(network);
  }

  release(network: InstanceNetwork): void {
    const fn = functionOf(network);
    const { pool } = this.options.node;
    const slot = this.slotOf(fn.hostIp);
    if (pool.ownerOf(slot) === network.instanceId) pool.release(slot);
    if (this.tapOwners.get(fn.tapName) === network.instanceId) this.tapOwners.delete(fn.tapName);
    this.options.hostPorts.release(network.instanceId, fn.ports);
  }

  reconcile(networks: readonly InstanceNetwork[], start: StartDumps | undefined): Promise<Record<string, number>> {
    return this.options.taps.reconcile(
      networks.map((network) => functionOf(network)),
      (name) => this.tapOwners.has(name),
      start,
    );
  }

  private reserve(network: InstanceNetwork): void {
    const fn = functionOf(network);
    this.tapOwners.set(fn.tapName, network.instanceId);
    this.options.hostPorts.reserve(network.instanceId, fn.ports);
  }

  private slotOf(hostIp: string): number {
    return ((parseIpv4(hostIp) ?? 0) - this.options.node.pool.cidr.network) >>> 2;
  }
}
