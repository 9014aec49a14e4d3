import type { Logger } from "../logger.js";
import { CommandLauncher } from "./kernel/command-launcher.js";
import { Conntrack } from "./kernel/conntrack.js";
import { FunctionStrategy } from "./strategies/function/function-strategy.js";
import { InstanceStore } from "./plane/instance-store.js";
import { DEFAULT_EGRESS_DENY, type FirewallBackend, type FirewallBackendName } from "./firewall/firewall.js";
import { IptablesFirewall } from "./firewall/iptables/iptables-firewall.js";
import { NftFirewall } from "./firewall/nftables/nft-firewall.js";
import { retireOtherBackends, selectFirewall, type FirewallBackendChoice } from "./plane/select-firewall.js";
import type { IptablesOptions } from "./firewall/iptables/iptables.js";
import { HostPorts } from "./node/host-ports.js";
import { NodeSetup } from "./node/node-setup.js";
import { FunctionTaps } from "./strategies/function/function-taps.js";
import { Ipv4Cidr } from "./model/ipv4-cidr.js";
import { NetworkManager } from "./plane/network-manager.js";
import { DEFAULT_HOST_PORTS, PortPolicy, type PortPolicyOptions } from "./model/port-policy.js";
import type { NetworkObserver } from "./model/network-observer.js";
import type { NetworkPlane } from "./plane/network-plane.js";
import { Rtnetlink } from "./kernel/rtnetlink/rtnetlink.js";
import { SockDiag } from "./kernel/sock-diag.js";
import { DEFAULT_SPARE_TAPS } from "./model/spare-count.js";
import { SpareTaps } from "./strategies/function/spare-taps.js";
import { StrategyRegistry } from "./plane/strategy-registry.js";
import { TapCreator } from "./kernel/tap-creator.js";
import { TapDeleter } from "./kernel/tap-deleter.js";

export type { ApplyAction, ApplyRequest, FunctionNetwork, InstanceNetwork, InstanceStatus, PortMapping, Protocol } from "./model/instance-network.js";
export type { NetworkPlane, PlaneStats } from "./plane/network-plane.js";
export type { NetworkObserver } from "./model/network-observer.js";
export type { PortPolicyOptions } from "./model/port-policy.js";
export type { FirewallBackendChoice } from "./plane/select-firewall.js";
export type { FirewallBackendName } from "./firewall/firewall.js";

const DEFAULT_STATE_DIR = "/var/lib/rik-network";

export interface NetworkPlaneOptions {
  /** CIDR the /30s are taken from, e.g. "10.220.0.0/16". */
  readonly pool: string;
  /** MTU set on every TAP and returned to the VMM; "auto" takes the default route's interface's. */
  readonly mtu: number | "auto";
  /** Whether 127.0.0.1:<port> on the node reaches the guests. Default true. */
  readonly localhost?: boolean;
  /** Host ports Functions may expose. Default: DEFAULT_HOST_PORTS, 22 reserved. */
  readonly portPolicy?: PortPolicyOptions;
  readonly logger: Logger;
  /** nft, iptables, or auto (nft when usable, else iptables). Default auto. */
  readonly firewallBackend?: FirewallBackendChoice;
  /** The iptables backend's binaries. */
  readonly iptables?: IptablesOptions;
  /** ip6tables-restore and -save of the same backend as `iptables`. Default ip6tables-restore, ip6tables-save. */
  readonly ip6tables?: { readonly restoreCommand: string; readonly saveCommand: string };
  /** Destinations (IPv4 CIDRs) guests never reach. Default DEFAULT_EGRESS_DENY; [] turns it off. */
  readonly egressDeny?: readonly string[];
  readonly observer?: NetworkObserver;
  /** Directory of the durable instance store. Default /var/lib/rik-network. */
  readonly stateDir?: string;
  /** Period of the drift-repairing resync, in milliseconds; 0 turns it off. */
  readonly resyncIntervalMs?: number;
  /** TAPs made ahead of time for CREATEs to take (SpareTaps); 0 turns them off. Default DEFAULT_SPARE_TAPS. */
  readonly spareTaps?: number;
  /** TUNSETOWNER and TUNSETGROUP of every TAP, for VMMs without CAP_NET_ADMIN (TapCreatorOptions). Default: root only. */
  readonly tapOwner?: number;
  readonly tapGroup?: number;
  /** Exposure entries one instance may have. Default DEFAULT_MAX_PORTS_PER_INSTANCE. */
  readonly maxPortsPerInstance?: number;
}

/**
 * Sets the node up, reconciles the kernel with the stored instances, and returns the
 * network plane. Strategies are registered here, per workload kind, and nowhere else.
 */
export async function createNetworkPlane(
  options: NetworkPlaneOptions,
): Promise<NetworkPlane & { readonly firewallBackend: FirewallBackendName; close(): Promise<void> }> {
  const { logger, observer } = options;
  const pool = Ipv4Cidr.parse(options.pool);
  const store = InstanceStore.open(options.stateDir ?? DEFAULT_STATE_DIR, { logger });
  const rtnetlink = Rtnetlink.open();
  const sockDiag = SockDiag.open();
  const taps = new TapCreator({
    ...(options.tapOwner === undefined ? {} : { owner: options.tapOwner }),
    ...(options.tapGroup === undefined ? {} : { group: options.tapGroup }),
  });
  // One deleter for instance TAPs and spares: concurrent deletions share one group delete.
  const tapDeleter = new TapDeleter(rtnetlink);
  const spares = new SpareTaps({ count: options.spareTaps ?? DEFAULT_SPARE_TAPS, taps, deleter: tapDeleter, rtnetlink, logger });
  // One co-process runs every command of the hot path but nf_tables' iptables-restore, which
  // has a long-lived process of its own (RestoreSession): conntrack for UDP, legacy's iptables-restore.
  const launcher = new CommandLauncher();
  const portPolicy = new PortPolicy(options.portPolicy ?? { ...DEFAULT_HOST_PORTS, reserved: [] });
  const localhost = options.localhost ?? true;
  const conntrack = new Conntrack(launcher);
  const node = new NodeSetup({ pool, mtu: options.mtu, rtnetlink, conntrack, logger });
  const hostPorts = new HostPorts({
    pool,
    localhost,
    portPolicy,
    rtnetlink,
    sockDiag,
    ...(options.maxPortsPerInstance === undefined ? {} : { maxPortsPerInstance: options.maxPortsPerInstance }),
  });
  const policy = { pool: pool.toString(), localhost, egressDeny: options.egressDeny ?? DEFAULT_EGRESS_DENY };
  const observed = observer === undefined ? {} : { observer };
  // The firewall backends: a backend is a folder under firewall/ and a line here.
  const backends: Record<FirewallBackendName, FirewallBackend> = {
    nft: {
      unusable: () => NftFirewall.unusable(policy),
      conflicts: () => NftFirewall.conflicts(),
      create: () => NftFirewall.create({ policy, logger, ...observed }),
    },
    iptables: {
      unusable: () => IptablesFirewall.unusable(options.iptables),
      conflicts: async () => [],
      create: () =>
        IptablesFirewall.create({
          policy,
          launcher,
          logger,
          ...(options.iptables === undefined ? {} : { iptables: options.iptables }),
          ...(options.ip6tables === undefined ? {} : { ip6tables: options.ip6tables }),
          ...observed,
        }),
    },
  };
  // What the firewall does not own, closed last.
  const closeKernel = async () => {
    await launcher.close();
    await taps.close();
    await rtnetlink.close();
    sockDiag.close();
    store.close();
  };
  let selected: Awaited<ReturnType<typeof selectFirewall>>;
  try {
    selected = await selectFirewall(options.firewallBackend ?? "auto", backends, logger);
  } catch (error) {
    await closeKernel();
    throw error;
  }
  const { firewall } = selected;
  const functionTaps = new FunctionTaps({ localhost, rtnetlink, taps, spares, tapDeleter, logger });
  const functions = new FunctionStrategy({
    node,
    hostPorts,
    firewall,
    taps: functionTaps,
    spares,
    conntrack,
    logger,
  });
  const registry = new StrategyRegistry({
    Function: functions,
    Pod: { unimplemented: "Pod workloads are not supported by rik-network yet: only Function instances get a network" },
  });
  const manager = new NetworkManager({
    registry,
    node,
    firewall,
    store,
    logger,
    ...(observer === undefined ? {} : { observer }),
    ...(options.resyncIntervalMs === undefined ? {} : { resyncIntervalMs: options.resyncIntervalMs }),
  });
  const close = async () => {
    await manager.close();
    await functionTaps.close();
    await spares.close();
    await firewall.close();
    await closeKernel();
  };
  try {
    await manager.start();
    const retired = await retireOtherBackends(selected.name, backends, logger);
    if (Object.keys(retired).length > 0) logger.info("removed what the other firewall backend left: the node moved backends", { firewall_backend: selected.name, removed: retired });
  } catch (error) {
    await close();
    throw error;
  }
  return {
    firewallBackend: selected.name,
    apply: (request) => manager.apply(request),
    get: (instanceId) => manager.get(instanceId),
    list: () => manager.list(),
    subscribe: (listener) => manager.subscribe(listener),
    stats: () => ({
      poolSize: node.pool.capacity,
      poolUsed: node.pool.size,
      strategies: Object.fromEntries(registry.entries.map(([kind, strategy]) => [kind, strategy.stats()])),
    }),
    close,
  };
}
