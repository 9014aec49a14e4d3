import type { Logger } from "../logger.js";
import { AddressPool } from "./address-pool.js";
import type { FunctionNetwork, InstanceNetwork, PortMapping } from "./instance-network.js";
import { guestMacFor, tapNameFor } from "./instance-naming.js";
import type { Iptables } from "./iptables.js";
import {
  chainKey,
  instanceRules,
  nodeChains,
  nodeJumpRules,
  nodePoolRules,
  parseIptablesSave,
  renderRestore,
  ruleKey,
  rulesOwnedBy,
  type Rule,
} from "./iptables-rules.js";
import { parseIpv4, type Ipv4Cidr } from "./ipv4-cidr.js";
import { NetworkError } from "./network-error.js";
import { findPoolConflicts } from "./pool-conflicts.js";
import type { Rtnetlink } from "./rtnetlink.js";
import { sysctlSet } from "./sysctl.js";
import { tapAdd } from "./tun-device.js";
import type { WorkloadDefinition } from "./workload-definition.js";
import type { WorkloadStrategy } from "./workload-strategy.js";
import type { PlaneStats } from "./network-plane.js";

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

/**
 * A Function runs as a Firecracker microVM behind a host TAP: one /30 from the pool,
 * a persistent TAP with the host address, DNAT per exposed port and FORWARD rules.
 */
export class FunctionStrategy implements WorkloadStrategy {
  private readonly options: FunctionStrategyOptions;
  private readonly pool: AddressPool;
  /** Which instance holds each host port ("tcp/8080"), so conflicts are refused before the kernel is touched. */
  private readonly hostPorts = new Map<string, string>();
  /** Which instance owns each TAP name, to refuse the (unlikely) hash collision. */
  private readonly taps = new Map<string, string>();

  constructor(options: FunctionStrategyOptions) {
    this.options = options;
    this.pool = new AddressPool(options.pool);
  }

  stats(): PlaneStats {
    return { poolSize: this.pool.capacity, poolUsed: this.pool.size };
  }

  /** Idempotent: adds only the chains and rules that are missing, never redeclares a chain (that would flush it). */
  async setupNode(): Promise<void> {
    const { rtnetlink, iptables, pool, logger } = this.options;
    const [links, addresses, routes] = [await rtnetlink.linkList(), await rtnetlink.addrList(), await rtnetlink.routeList()];
    const conflicts = findPoolConflicts(pool, { links, addresses, routes });
    if (conflicts.length > 0) {
      throw new NetworkError(
        "failed-precondition",
        `address pool ${pool.toString()} overlaps the host's ${conflicts.join(", ")}; choose another --pool`,
      );
    }
    await sysctlSet("net.ipv4.ip_forward", "1");
    const saved = parseIptablesSave(await iptables.save());
    const present = new Set(saved.rules.map(ruleKey));
    const missing = (rules: Rule[]) => rules.filter((rule) => !present.has(ruleKey(rule)));
    const batch = {
      createChains: nodeChains.filter((chain) => !saved.chains.has(chainKey(chain))),
      insert: missing(nodeJumpRules()),
      append: missing(nodePoolRules(pool.toString())),
    };
    await iptables.restore(renderRestore(batch));
    logger.info("node set up", {
      pool: pool.toString(),
      chains_created: batch.createChains.map((c) => c.name),
      rules_added: batch.insert.length + batch.append.length,
    });
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

  async create(instanceId: string, definition: WorkloadDefinition): Promise<InstanceNetwork> {
    // Checked again, with no await before the reservations below, so concurrent creates cannot both pass.
    this.admit(instanceId, definition);
    const ports = portsOf(definition);
    const tapName = tapNameFor(instanceId);
    const allocation = this.pool.allocate(instanceId);
    this.taps.set(tapName, instanceId);
    for (const port of ports) this.hostPorts.set(portKey(port), instanceId);

    const network: FunctionNetwork = {
      tapName,
      hostIp: allocation.hostIp,
      guestIp: allocation.guestIp,
      prefixLength: allocation.prefixLength,
      mask: allocation.mask,
      guestMac: guestMacFor(instanceId),
      mtu: this.options.mtu,
      ports,
      bootArg: bootArg(allocation.guestIp, allocation.hostIp, allocation.mask),
    };
    const { rtnetlink, iptables } = this.options;
    let tapCreated = false;
    try {
      tapAdd(tapName);
      tapCreated = true;
      const index = await rtnetlink.linkIndex(tapName);
      await rtnetlink.addrReplace(index, network.hostIp, network.prefixLength);
      await rtnetlink.linkSetUp(index, network.mtu);
      // Last step, and atomic: if it fails no rule was added, so undoing the TAP is enough.
      await iptables.restore(renderRestore({ append: instanceRules({ instanceId, ...network }) }));
    } catch (error) {
      if (tapCreated) await this.deleteTap(tapName);
      this.forget(instanceId, allocation.slot, tapName, ports);
      throw error;
    }
    return { instanceId, kind: "Function", status: "running", function: network };
  }

  async destroy(instance: InstanceNetwork): Promise<void> {
    const network = instance.function;
    if (network === undefined) return;
    const rules = instanceRules({ instanceId: instance.instanceId, ...network });
    try {
      await this.options.iptables.restore(renderRestore({ delete: rules }));
    } catch (error) {
      // Some rule is already gone (drift): delete what is left of ours, by its comment.
      this.options.logger.warn("rule batch delete failed, deleting by comment", {
        instance_id: instance.instanceId,
        error: (error as Error).message,
      });
      const saved = parseIptablesSave(await this.options.iptables.save());
      await this.options.iptables.restore(renderRestore({ delete: rulesOwnedBy(saved, instance.instanceId) }));
    }
    await this.deleteTap(network.tapName);
    const slot = this.slotOf(network.hostIp);
    this.forget(instance.instanceId, slot, network.tapName, network.ports);
  }

  private async deleteTap(tapName: string): Promise<void> {
    try {
      await this.options.rtnetlink.linkDel(tapName);
    } catch (error) {
      if (!NetworkError.is(error, "not-found")) throw error;
    }
  }

  private slotOf(hostIp: string): number {
    return ((parseIpv4(hostIp) ?? 0) - this.pool.cidr.network) >>> 2;
  }

  private forget(instanceId: string, slot: number, tapName: string, ports: readonly PortMapping[]): void {
    if (this.pool.ownerOf(slot) === instanceId) this.pool.release(slot);
    if (this.taps.get(tapName) === instanceId) this.taps.delete(tapName);
    for (const port of ports) if (this.hostPorts.get(portKey(port)) === instanceId) this.hostPorts.delete(portKey(port));
  }
}
