import type { Logger } from "../../../logger.js";
import { AddressPool } from "../../model/address-pool.js";
import { faultPoint } from "../../plane/fault-point.js";
import type { FunctionNetwork, InstanceNetwork, PortMapping } from "../../model/instance-network.js";
import { guestMacFor, tapNameFor } from "../../model/instance-naming.js";
import type { Iptables } from "../../firewall/iptables/iptables.js";
import type { Conntrack } from "../../kernel/conntrack.js";
import { checkExposureCount, DEFAULT_MAX_PORTS_PER_INSTANCE } from "../../model/exposure-limit.js";
import { hostListeners, shadowedListener } from "../../kernel/host-listeners.js";
import {
  instanceRules,
  nodeChainRules,
  nodeChains,
  nodeIpv6Rules,
  nodeJumpRules,
  parseIptablesSave,
  renderRestore,
  rulesOwnedBy,
  type NodeRuleOptions,
} from "../../firewall/iptables/iptables-rules.js";
import { parseIpv4, type Ipv4Cidr } from "../../model/ipv4-cidr.js";
import { NetworkError } from "../../model/network-error.js";
import type { PlaneStats } from "../../plane/network-plane.js";
import { findPoolConflicts } from "../../node/pool-conflicts.js";
import type { PortPolicy } from "../../model/port-policy.js";
import { planActions, planReconcile, type DesiredTap } from "./reconcile-plan.js";
import { RestoreBatcher } from "../../firewall/iptables/restore-batcher.js";
import { rollBack } from "../../plane/rollback.js";
import type { AddressInfo, Ipv6LinkConf, LinkInfo, Rtnetlink } from "../../kernel/rtnetlink/rtnetlink.js";
import type { SockDiag } from "../../kernel/sock-diag.js";
import { sysctlSet } from "../../kernel/sysctl.js";
import { isSpareTapName, type SpareTaps } from "./spare-taps.js";
import { TAP_IPV6_SYSCTLS, type TapCreator } from "../../kernel/tap-creator.js";
import type { TapDeleter } from "../../kernel/tap-deleter.js";
import type { WorkloadDefinition } from "../../model/workload-definition.js";
import type { WorkloadStrategy } from "../workload-strategy.js";

export interface FunctionStrategyOptions {
  readonly pool: Ipv4Cidr;
  /** MTU of every new TAP; "auto" takes the MTU of the default route's interface at setup. */
  readonly mtu: number | "auto";
  /** Whether 127.0.0.1:<port> on the node reaches the guests (route_localnet on each TAP, SNAT). */
  readonly localhost: boolean;
  readonly portPolicy: PortPolicy;
  /** Destinations (IPv4 CIDRs) guests never reach, neither forwarded nor on the node. */
  readonly egressDeny: readonly string[];
  readonly iptables: Iptables;
  /** ip6tables of the same backend; undefined when the kernel has no IPv6 (nothing to close then). */
  readonly ip6tables: Iptables | undefined;
  readonly rtnetlink: Rtnetlink;
  readonly taps: TapCreator;
  readonly spares: SpareTaps;
  readonly tapDeleter: TapDeleter;
  readonly sockDiag: SockDiag;
  readonly conntrack: Conntrack;
  readonly logger: Logger;
  /** Exposure entries one instance may have. Default DEFAULT_MAX_PORTS_PER_INSTANCE. */
  readonly maxPortsPerInstance?: number;
}

/** Used when the node has no default route to take the MTU from. */
const FALLBACK_MTU = 1500;

/** Who holds a host port: an instance, on one node address or (hostIp undefined) on all of them. */
interface PortHolder {
  readonly instanceId: string;
  readonly hostIp: string | undefined;
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

function portKey(port: PortMapping): string {
  return `${port.protocol}/${port.hostPort}`;
}

function portText(port: PortMapping): string {
  return `host port ${port.hostIp === undefined ? "" : `${port.hostIp}:`}${port.hostPort}/${port.protocol.toUpperCase()}`;
}

/** Two bindings of one port clash unless both name a node address and the addresses differ. */
function clashes(holder: PortHolder, port: PortMapping): boolean {
  return holder.hostIp === undefined || port.hostIp === undefined || holder.hostIp === port.hostIp;
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.");
}

function functionOf(network: InstanceNetwork): FunctionNetwork {
  if (network.function === undefined) throw new NetworkError("internal", `instance "${network.instanceId}" has no Function network`);
  return network.function;
}

function udpPortsOf(network: InstanceNetwork): PortMapping[] {
  return functionOf(network).ports.filter((port) => port.protocol === "udp");
}

/** What a guest TAP's IPv6 must be: off, with no address of its own, deaf to router advertisements. */
function hasNoIpv6(conf: Ipv6LinkConf): boolean {
  return conf.disabled && String(conf.acceptRa) === TAP_IPV6_SYSCTLS.accept_ra && String(conf.addrGenMode) === TAP_IPV6_SYSCTLS.addr_gen_mode;
}

/**
 * Equivalent to: `sysctl -w net.ipv6.conf.$tap.disable_ipv6=1 net.ipv6.conf.$tap.accept_ra=0
 * net.ipv6.conf.$tap.addr_gen_mode=1`; disabling IPv6 also removes the addresses the link got
 * meanwhile. Returns whether anything had to change.
 */
function turnIpv6Off(tapName: string): boolean {
  let changed = false;
  for (const [key, value] of Object.entries(TAP_IPV6_SYSCTLS)) changed = sysctlSet(`net.ipv6.conf.${tapName}.${key}`, value) || changed;
  return changed;
}

/**
 * A Function runs as a Firecracker microVM behind a host TAP: one /30 from the pool,
 * a persistent TAP with the host address, and a DNAT per exposed port (the FORWARD rules are
 * node-wide).
 */
export class FunctionStrategy implements WorkloadStrategy {
  private readonly options: FunctionStrategyOptions;
  private readonly pool: AddressPool;
  private readonly rules: RestoreBatcher;
  /** Who holds each host port ("tcp/8080"), so conflicts are refused before the kernel is touched. */
  private readonly hostPorts = new Map<string, PortHolder[]>();
  private mtu: number;
  /** Which instance owns each TAP name, to refuse the (unlikely) hash collision. */
  private readonly taps = new Map<string, string>();
  /** What setupNode read for the reconcile that follows it at start; taken by that reconcile. */
  private startState: { links: LinkInfo[]; addresses: AddressInfo[]; saved: Promise<string>; saved6: Promise<string> | undefined } | undefined;

  constructor(options: FunctionStrategyOptions) {
    this.options = options;
    this.pool = new AddressPool(options.pool);
    this.rules = new RestoreBatcher(
      (text) => options.iptables.restore(text),
      () => options.iptables.save(),
    );
    this.mtu = options.mtu === "auto" ? FALLBACK_MTU : options.mtu;
  }

  private get nodeRuleOptions(): NodeRuleOptions {
    return { pool: this.options.pool.toString(), localhost: this.options.localhost, egressDeny: this.options.egressDeny };
  }

  private rulesOf(network: InstanceNetwork) {
    return instanceRules({ instanceId: network.instanceId, ...functionOf(network) });
  }

  stats(): PlaneStats {
    return { poolSize: this.pool.capacity, poolUsed: this.pool.size };
  }

  async setupNode(): Promise<void> {
    const { rtnetlink, pool, iptables } = this.options;
    // Both run in processes of their own: started first, they overlap the dumps here and the
    // store load that follows, which keep this thread busy (on 2 cores, ~100 ms less at 5000).
    const saved = iptables.save();
    saved.catch(() => undefined); // awaited by the start reconcile; setupNode may throw first
    const saved6 = this.options.ip6tables?.save();
    saved6?.catch(() => undefined); // likewise
    const conntrack = this.options.conntrack.available();
    conntrack.catch(() => undefined); // awaited below
    const links = await rtnetlink.linkList();
    const addresses = await rtnetlink.addrList();
    const routes = await rtnetlink.routeList();
    const conflicts = findPoolConflicts(pool, { links, addresses, routes });
    if (conflicts.length > 0) {
      throw new NetworkError(
        "failed-precondition",
        `address pool ${pool.toString()} overlaps the host's ${conflicts.join(", ")}; choose another --pool`,
      );
    }
    await conntrack;
    sysctlSet("net.ipv4.ip_forward", "1");
    // The reconcile at start comes next, with nothing served in between: nothing of ours can
    // change links or addresses before it, so it takes these dumps rather than repeating them.
    this.startState = { links, addresses, saved, saved6 };
    if (this.options.mtu === "auto") {
      const route = routes.find((r) => r.prefixLength === 0 && r.index !== undefined);
      const link = links.find((l) => l.index === route?.index);
      this.mtu = link?.mtu ?? FALLBACK_MTU;
      if (link === undefined) {
        this.options.logger.info(`no default route to take the TAP MTU from; using ${FALLBACK_MTU} (set --mtu to choose)`);
      } else {
        this.options.logger.info("TAP MTU taken from the default route's interface", { interface: link.name, mtu: link.mtu });
      }
    }
  }

  /**
   * Refuses more ports than the node allows an instance, what the port policy forbids, a hostIP that is not the node's, and a host port
   * that a socket on the node receives on (the DNAT would silently take its traffic); then
   * what `claim` refuses.
   */
  async admit(instanceId: string, definition: WorkloadDefinition): Promise<void> {
    const ports = portsOf(definition);
    checkExposureCount(ports.length, this.options.maxPortsPerInstance ?? DEFAULT_MAX_PORTS_PER_INSTANCE);
    for (const port of ports) this.options.portPolicy.check(port);
    this.claim(instanceId, ports);
    const bound = ports.filter((port) => port.hostIp !== undefined);
    if (bound.length > 0) await this.checkHostAddresses(bound);
    if (ports.length === 0) return;
    const listeners = await hostListeners(this.options.sockDiag, new Set(ports.map((port) => port.protocol)));
    for (const port of ports) {
      const listener = shadowedListener(listeners, port, { localhost: this.options.localhost });
      if (listener !== undefined) {
        throw new NetworkError(
          "failed-precondition",
          `${portText(port)} is already in use: a socket on the node is listening on ${listener.address}:${listener.port}/${listener.protocol.toUpperCase()}, ` +
            "and exposing the port would silently take its traffic; stop that process or pick another port",
        );
      }
    }
  }

  private async checkHostAddresses(ports: readonly PortMapping[]): Promise<void> {
    const local = new Set((await this.options.rtnetlink.addrList()).map((address) => address.address));
    for (const port of ports) {
      const hostIp = port.hostIp!;
      if (isLoopback(hostIp) && !this.options.localhost) {
        throw new NetworkError(
          "failed-precondition",
          `${portText(port)} binds to a loopback address, but this node does not expose functions on localhost (--localhost false); omit hostIP or use an address of the node`,
        );
      }
      if (!isLoopback(hostIp) && !local.has(hostIp)) {
        throw new NetworkError(
          "failed-precondition",
          `${portText(port)} binds to ${hostIp}, which is not an address of this node; omit hostIP or use one of the node's addresses`,
        );
      }
      if (this.options.pool.contains(parseIpv4(hostIp)!)) {
        throw new NetworkError("invalid-argument", `${portText(port)} binds to ${hostIp}, inside the instances' address pool ${this.options.pool.toString()}; use an address of the node`);
      }
    }
  }

  /** Refuses, with no await, what conflicts with other instances: their host ports and TAP names. */
  private claim(instanceId: string, ports: readonly PortMapping[]): void {
    for (const port of ports) {
      const holder = (this.hostPorts.get(portKey(port)) ?? []).find((h) => h.instanceId !== instanceId && clashes(h, port));
      if (holder !== undefined) {
        throw new NetworkError(
          "already-exists",
          `${portText(port)} is already exposed by instance "${holder.instanceId}"; pick another port or destroy that instance`,
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
    this.claim(instanceId, portsOf(definition));
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
        mtu: this.mtu,
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
    this.pool.reserve(this.slotOf(functionOf(network).hostIp), network.instanceId);
    this.reserve(network);
  }

  async realize(network: InstanceNetwork): Promise<void> {
    const fn = functionOf(network);
    // The rules do not need the TAP to exist, so both go at once. The rules first: iptables-restore
    // works in its own process while this thread makes the TAP's kernel calls.
    const rules = this.rules.submit({ append: this.rulesOf(network) });
    const [tap, added] = await Promise.allSettled([this.addTap(fn), rules]);
    if (tap.status === "fulfilled" && added.status === "fulfilled") {
      faultPoint("create: TAP and rules added");
      await this.flushUdpFlows(network);
      return;
    }
    // Undo whatever was added: all of the rules, or the part (table) of them a failed restore
    // committed, and the TAP, whatever it got to. The caller sees what failed first.
    return rollBack(tap.status === "rejected" ? tap.reason : (added as PromiseRejectedResult).reason, [
      { name: "delete the rules", run: () => this.rules.submit({ delete: this.rulesOf(network) }) },
      { name: `delete TAP ${fn.tapName}`, run: () => this.deleteTap(fn.tapName) },
    ], { logger: this.options.logger, instanceId: network.instanceId });
  }

  /**
   * Equivalent to: `ip tuntap add dev $tap mode tap vnet_hdr && ip addr add $host/30 dev $tap
   * && ip link set $tap mtu $mtu up && sysctl -w net.ipv4.conf.$tap.route_localnet=1`; or,
   * when a spare TAP is ready, renaming and configuring that one (SpareTaps.take).
   */
  private async addTap(tap: DesiredTap): Promise<void> {
    const { rtnetlink } = this.options;
    if (await this.options.spares.take(tap, this.options.localhost)) {
      faultPoint("create: TAP added");
      return;
    }
    const { detached } = await this.options.taps.add(tap.tapName);
    faultPoint("create: TAP added");
    // Independent of each other: our descriptor detaches (in TapCreator's worker), the link
    // comes up with its route_localnet, and its index is looked up for the address, all at once.
    const addressed = rtnetlink.linkIndex(tap.tapName).then(async (index) => {
      await rtnetlink.addrReplace(index, tap.hostIp, tap.prefixLength, { name: tap.tapName });
      faultPoint("create: address added");
    });
    await Promise.all([detached, addressed, rtnetlink.linkSetUp(tap.tapName, { mtu: tap.mtu, routeLocalnet: this.options.localhost })]);
  }

  /**
   * A connection to 127.0.0.1 DNATed to a guest keeps its loopback source until POSTROUTING
   * masquerades it; without route_localnet the route lookup drops it as a martian first.
   * Returns whether the value had to change.
   */
  private setRouteLocalnet(tapName: string): boolean {
    return sysctlSet(`net.ipv4.conf.${tapName}.route_localnet`, this.options.localhost ? "1" : "0");
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

  async teardown(network: InstanceNetwork): Promise<void> {
    // Independent kernel objects: the rule delete (an nf_tables transaction) and the TAP
    // delete (an RCU grace period) cost about the same, so they overlap.
    await Promise.all([this.removeRules(network), this.deleteTap(functionOf(network).tapName)]);
    faultPoint("destroy: rules and TAP removed");
    await this.flushUdpFlows(network);
  }

  private async removeRules(network: InstanceNetwork): Promise<void> {
    try {
      await this.rules.submit({ delete: this.rulesOf(network) });
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
      const holders = (this.hostPorts.get(portKey(port)) ?? []).filter((h) => h.instanceId !== network.instanceId);
      if (holders.length === 0) this.hostPorts.delete(portKey(port));
      else this.hostPorts.set(portKey(port), holders);
    }
  }

  async reconcile(networks: readonly InstanceNetwork[]): Promise<Record<string, number>> {
    const { rtnetlink, iptables } = this.options;
    const start = this.startState;
    this.startState = undefined;
    const links = start?.links ?? (await rtnetlink.linkList());
    const addresses = start?.addresses ?? (await rtnetlink.addrList());
    const text = await (start?.saved ?? iptables.save());
    const saved = parseIptablesSave(text);
    const plan = planReconcile(
      {
        taps: networks.map((network): DesiredTap => functionOf(network)),
        chains: nodeChains(),
        jumps: nodeJumpRules(this.nodeRuleOptions),
        fixed: nodeChainRules(this.nodeRuleOptions),
        rules: networks.flatMap((network) => this.rulesOf(network)),
      },
      { links, addresses, saved },
    );
    for (const tap of plan.createTaps) await this.addTap(tap);
    for (const { tap, index, addAddress, setUp } of plan.repairTaps) {
      if (addAddress) await rtnetlink.addrReplace(index, tap.hostIp, tap.prefixLength, { name: tap.tapName });
      if (setUp) await rtnetlink.linkSetUp(index, { mtu: tap.mtu, name: tap.tapName });
    }
    // From the link dump: new TAPs got these from addTap.
    const linkByName = new Map(links.map((link) => [link.name, link]));
    const { owner, group } = this.options.taps.ownership;
    let localnetRepaired = 0;
    let ipv6Repaired = 0;
    let ownerRepaired = 0;
    for (const network of networks) {
      const link = linkByName.get(functionOf(network).tapName);
      if (link?.kind !== "tun") continue;
      if (link.routeLocalnet !== this.options.localhost && this.setRouteLocalnet(link.name)) localnetRepaired++;
      if ((owner !== undefined && link.tunOwner !== owner) || (group !== undefined && link.tunGroup !== group)) {
        if (await this.reattachTap(link.name)) ownerRepaired++;
      }
    }
    // Spares too: one whose IPv6 was turned back on would become an instance's TAP with it.
    for (const link of links) {
      const ours = link.kind === "tun" && (isSpareTapName(link.name) || this.taps.has(link.name));
      if (ours && link.ipv6 !== undefined && !hasNoIpv6(link.ipv6) && turnIpv6Off(link.name)) ipv6Repaired++;
    }
    await this.rules.submit(plan.rules);
    const nameByIndex = new Map(links.map((link) => [link.index, link.name]));
    for (const address of plan.removeAddresses) {
      await rtnetlink.addrDel(address.index, address.address, address.prefixLength, { name: nameByIndex.get(address.index) });
    }
    await Promise.all(plan.deleteTaps.map((tapName) => this.deleteTap(tapName)));
    const ipv6Rules = await this.reconcileIpv6Rules(start?.saved6);
    // Spares are made once the node is in shape: their TAP work would only slow this down.
    if (start !== undefined) this.options.spares.start(start.links);
    const repaired = {
      route_localnet_repaired: localnetRepaired,
      ipv6_repaired: ipv6Repaired,
      ipv6_rule_repaired: ipv6Rules,
      tap_owner_repaired: ownerRepaired,
    };
    return { ...planActions(plan), ...Object.fromEntries(Object.entries(repaired).filter(([, count]) => count > 0)) };
  }

  /**
   * Makes ip6tables hold exactly nodeIpv6Rules (missing ones inserted, duplicates and stale
   * rules of ours removed), with the same planner as the IPv4 rules. Returns how many
   * changes that took. A failure is logged, not thrown: the rule backs up the TAPs' own IPv6
   * settings, and a node whose ip6tables cannot work (no raw table) must still get its IPv4
   * repairs; the next reconcile tries again.
   */
  private async reconcileIpv6Rules(startSaved: Promise<string> | undefined): Promise<number> {
    const { ip6tables } = this.options;
    if (ip6tables === undefined) return 0;
    try {
      const saved = parseIptablesSave(await (startSaved ?? ip6tables.save()));
      const { rules } = planReconcile({ taps: [], chains: [], jumps: nodeIpv6Rules(), fixed: [], rules: [] }, { links: [], addresses: [], saved });
      await ip6tables.restore(renderRestore(rules));
      return rules.insert.length + rules.delete.length;
    } catch (error) {
      this.options.logger.error("cannot set the ip6tables drop of guest traffic; the TAPs still have IPv6 off, and the next reconcile tries again", {
        error: (error as Error).message,
      });
      return 0;
    }
  }

  /**
   * Gives an existing TAP the node's owner and group (TapCreator re-attaches to it). Refused
   * while a VMM holds the TAP: logged, and the next reconcile tries again. Returns whether it
   * was done.
   */
  private async reattachTap(tapName: string): Promise<boolean> {
    try {
      const { detached } = await this.options.taps.add(tapName);
      await detached;
      return true;
    } catch (error) {
      this.options.logger.warn("cannot give a TAP the node's --tap-owner/--tap-group (a VMM may hold it); the next reconcile tries again", {
        tap: tapName,
        error: (error as Error).message,
      });
      return false;
    }
  }

  private reserve(network: InstanceNetwork): void {
    const fn = functionOf(network);
    this.taps.set(fn.tapName, network.instanceId);
    for (const port of fn.ports) {
      const holders = (this.hostPorts.get(portKey(port)) ?? []).filter((h) => h.instanceId !== network.instanceId);
      this.hostPorts.set(portKey(port), [...holders, { instanceId: network.instanceId, hostIp: port.hostIp }]);
    }
  }

  private deleteTap(tapName: string): Promise<void> {
    return this.options.tapDeleter.delete(tapName);
  }

  private slotOf(hostIp: string): number {
    return ((parseIpv4(hostIp) ?? 0) - this.pool.cidr.network) >>> 2;
  }
}
