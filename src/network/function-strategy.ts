import type { Logger } from "../logger.js";
import { AddressPool } from "./address-pool.js";
import { faultPoint } from "./fault-point.js";
import type { FunctionNetwork, InstanceNetwork, PortMapping } from "./instance-network.js";
import { guestMacFor, tapNameFor } from "./instance-naming.js";
import type { Iptables } from "./iptables.js";
import {
  instanceRules,
  nodeChains,
  nodeJumpRules,
  nodePoolRules,
  parseIptablesSave,
  rulesOwnedBy,
} from "./iptables-rules.js";
import { parseIpv4, type Ipv4Cidr } from "./ipv4-cidr.js";
import { NetworkError } from "./network-error.js";
import type { PlaneStats } from "./network-plane.js";
import { findPoolConflicts } from "./pool-conflicts.js";
import { planActions, planReconcile, type DesiredTap } from "./reconcile-plan.js";
import { RestoreBatcher } from "./restore-batcher.js";
import type { Rtnetlink } from "./rtnetlink.js";
import { sysctlSet } from "./sysctl.js";
import { TapDeleter } from "./tap-deleter.js";
import { tapAdd } from "./tun-device.js";
import type { WorkloadDefinition } from "./workload-definition.js";
import type { WorkloadStrategy } from "./workload-strategy.js";

export interface FunctionStrategyOptions {
  readonly pool: Ipv4Cidr;
  readonly mtu: number;
  readonly iptables: Iptables;
  readonly rtnetlink: Rtnetlink;
  readonly logger: Logger;
}

export function bootArg(guestIp: string, hostIp: string, mask: string): string {
  return `ip=${guestIp}::${hostIp}:${mask}::eth0:off`;
}

function portsOf(definition: WorkloadDefinition): PortMapping[] {
  const exposure = definition.spec.function?.exposure;
  return exposure === undefined ? [] : [{ protocol: "tcp", hostPort: exposure.port, guestPort: exposure.targetPort }];
}

function portKey(port: PortMapping): string {
  return `${port.protocol}/${port.hostPort}`;
}

function functionOf(network: InstanceNetwork): FunctionNetwork {
  if (network.function === undefined) throw new NetworkError("internal", `instance "${network.instanceId}" has no Function network`);
  return network.function;
}

function rulesOf(network: InstanceNetwork) {
  return instanceRules({ instanceId: network.instanceId, ...functionOf(network) });
}

/**
 * A Function runs as a Firecracker microVM behind a host TAP: one /30 from the pool,
 * a persistent TAP with the host address, DNAT per exposed port and FORWARD rules.
 */
export class FunctionStrategy implements WorkloadStrategy {
  private readonly options: FunctionStrategyOptions;
  private readonly pool: AddressPool;
  private readonly rules: RestoreBatcher;
  private readonly tapDeleter: TapDeleter;
  /** Which instance holds each host port ("tcp/8080"), so conflicts are refused before the kernel is touched. */
  private readonly hostPorts = new Map<string, string>();
  /** Which instance owns each TAP name, to refuse the (unlikely) hash collision. */
  private readonly taps = new Map<string, string>();

  constructor(options: FunctionStrategyOptions) {
    this.options = options;
    this.pool = new AddressPool(options.pool);
    this.rules = new RestoreBatcher((text) => options.iptables.restore(text));
    this.tapDeleter = new TapDeleter(options.rtnetlink);
  }

  stats(): PlaneStats {
    return { poolSize: this.pool.capacity, poolUsed: this.pool.size };
  }

  async setupNode(): Promise<void> {
    const { rtnetlink, pool } = this.options;
    const [links, addresses, routes] = [await rtnetlink.linkList(), await rtnetlink.addrList(), await rtnetlink.routeList()];
    const conflicts = findPoolConflicts(pool, { links, addresses, routes });
    if (conflicts.length > 0) {
      throw new NetworkError(
        "failed-precondition",
        `address pool ${pool.toString()} overlaps the host's ${conflicts.join(", ")}; choose another --pool`,
      );
    }
    await sysctlSet("net.ipv4.ip_forward", "1");
  }

  admit(instanceId: string, definition: WorkloadDefinition): void {
    for (const port of portsOf(definition)) {
      const owner = this.hostPorts.get(portKey(port));
      if (owner !== undefined && owner !== instanceId) {
        throw new NetworkError(
          "already-exists",
          `host port ${port.hostPort}/${port.protocol} is already exposed by instance "${owner}"; pick another port or destroy that instance`,
        );
      }
    }
    const tapName = tapNameFor(instanceId);
    const tapOwner = this.taps.get(tapName);
    if (tapOwner !== undefined && tapOwner !== instanceId) {
      throw new NetworkError(
        "already-exists",
        `TAP name ${tapName} of instance "${instanceId}" collides with instance "${tapOwner}"; use another instance id`,
      );
    }
  }

  prepare(instanceId: string, definition: WorkloadDefinition): InstanceNetwork {
    // Checked again with no await before the reservations, so concurrent creates cannot both pass.
    this.admit(instanceId, definition);
    const allocation = this.pool.allocate(instanceId);
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
        mtu: this.options.mtu,
        ports: portsOf(definition),
        bootArg: bootArg(allocation.guestIp, allocation.hostIp, allocation.mask),
      },
    };
    this.reserve(network);
    return network;
  }

  restore(network: InstanceNetwork): void {
    this.pool.reserve(this.slotOf(functionOf(network).hostIp), network.instanceId);
    this.reserve(network);
  }

  async realize(network: InstanceNetwork): Promise<void> {
    const fn = functionOf(network);
    // The rules do not need the TAP to exist, so both go at once; the exec dominates.
    const [tap, rules] = await Promise.allSettled([this.addTap(fn), this.rules.submit({ append: rulesOf(network) })]);
    if (tap.status === "fulfilled" && rules.status === "fulfilled") {
      faultPoint("create: TAP and rules added");
      return;
    }
    // Undo whichever half succeeded; the restore is atomic, so a failed one added nothing.
    if (rules.status === "fulfilled") await this.rules.submit({ delete: rulesOf(network) });
    await this.deleteTap(fn.tapName);
    throw tap.status === "rejected" ? tap.reason : (rules as PromiseRejectedResult).reason;
  }

  /** Equivalent to: `ip tuntap add dev $tap mode tap vnet_hdr && ip addr add $host/30 dev $tap && ip link set $tap mtu $mtu up` */
  private async addTap(tap: DesiredTap): Promise<void> {
    const { rtnetlink } = this.options;
    tapAdd(tap.tapName);
    faultPoint("create: TAP added");
    const index = await rtnetlink.linkIndex(tap.tapName);
    await rtnetlink.addrReplace(index, tap.hostIp, tap.prefixLength);
    faultPoint("create: address added");
    await rtnetlink.linkSetUp(index, tap.mtu);
  }

  async teardown(network: InstanceNetwork): Promise<void> {
    // Independent kernel objects: the rule delete (an nf_tables transaction) and the TAP
    // delete (an RCU grace period) cost about the same, so they overlap.
    await Promise.all([this.removeRules(network), this.deleteTap(functionOf(network).tapName)]);
    faultPoint("destroy: rules and TAP removed");
  }

  private async removeRules(network: InstanceNetwork): Promise<void> {
    try {
      await this.rules.submit({ delete: rulesOf(network) });
    } catch (error) {
      // Some rule is already gone (drift, or a create cut short): delete what is left of ours, by its comment.
      this.options.logger.warn("rule batch delete failed, deleting by comment", {
        instance_id: network.instanceId,
        error: (error as Error).message,
      });
      const saved = parseIptablesSave(await this.options.iptables.save());
      await this.rules.submit({ delete: rulesOwnedBy(saved, network.instanceId) });
    }
    faultPoint("destroy: rules removed");
  }

  release(network: InstanceNetwork): void {
    const fn = functionOf(network);
    const slot = this.slotOf(fn.hostIp);
    if (this.pool.ownerOf(slot) === network.instanceId) this.pool.release(slot);
    if (this.taps.get(fn.tapName) === network.instanceId) this.taps.delete(fn.tapName);
    for (const port of fn.ports) {
      if (this.hostPorts.get(portKey(port)) === network.instanceId) this.hostPorts.delete(portKey(port));
    }
  }

  async reconcile(networks: readonly InstanceNetwork[]): Promise<Record<string, number>> {
    const { rtnetlink, iptables, pool } = this.options;
    const [links, addresses, saved] = [await rtnetlink.linkList(), await rtnetlink.addrList(), parseIptablesSave(await iptables.save())];
    const plan = planReconcile(
      {
        taps: networks.map((network): DesiredTap => functionOf(network)),
        chains: nodeChains,
        jumps: nodeJumpRules(),
        rules: [...nodePoolRules(pool.toString()), ...networks.flatMap(rulesOf)],
      },
      { links, addresses, saved },
    );
    for (const tap of plan.createTaps) await this.addTap(tap);
    for (const { tap, index, addAddress, setUp } of plan.repairTaps) {
      if (addAddress) await rtnetlink.addrReplace(index, tap.hostIp, tap.prefixLength);
      if (setUp) await rtnetlink.linkSetUp(index, tap.mtu);
    }
    await this.rules.submit(plan.rules);
    for (const address of plan.removeAddresses) await rtnetlink.addrDel(address.index, address.address, address.prefixLength);
    await Promise.all(plan.deleteTaps.map((tapName) => this.deleteTap(tapName)));
    return planActions(plan);
  }

  private reserve(network: InstanceNetwork): void {
    const fn = functionOf(network);
    this.taps.set(fn.tapName, network.instanceId);
    for (const port of fn.ports) this.hostPorts.set(portKey(port), network.instanceId);
  }

  private deleteTap(tapName: string): Promise<void> {
    return this.tapDeleter.delete(tapName);
  }

  private slotOf(hostIp: string): number {
    return ((parseIpv4(hostIp) ?? 0) - this.pool.cidr.network) >>> 2;
  }
}
