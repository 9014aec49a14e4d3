import { parseArgs } from "node:util";
import type { LogLevel } from "../logger.js";
import { ConfigError, invalid, type Given } from "./config-error.js";
import { options, type Option } from "./options.js";
import {
  absolutePath,
  backend,
  booleanOr,
  egressDeny,
  firewallBackend,
  groupName,
  hostPortRange,
  logLevel,
  maxPortsPerInstance,
  metricsListen,
  mtu,
  nodeName,
  numericId,
  pool,
  reservedPorts,
  resyncInterval,
  socketPath,
  spareTaps,
  tcpListen,
} from "./validators.js";

/** Where a TCP listener or the metrics endpoint binds. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** The server side of mTLS: its certificate and key, and the CA that client certificates must chain to. */
export interface ServerTlsFiles {
  readonly certPath: string;
  readonly keyPath: string;
  readonly clientCaPath: string;
}

export interface TcpListenConfig extends HostPort {
  /** mTLS files, or "insecure" for plain TCP (only with --insecure-tcp). */
  readonly tls: ServerTlsFiles | "insecure";
}

export type IptablesBackend = "auto" | "nft" | "legacy";

/** The firewall backend: "auto" takes nft when a usable nft (1.0 or later) is present, else iptables. */
export type FirewallBackend = "auto" | "nft" | "iptables";

export interface Config {
  /** Absolute path of the unix socket to serve on. */
  readonly socketPath: string;
  /** Group granted access to the socket (mode 0660); only root (mode 0600) when absent. */
  readonly socketGroup?: string;
  /** TCP address to serve on as well; unix socket only when absent. */
  readonly listen?: TcpListenConfig;
  /** Where the Prometheus endpoint binds; no endpoint when absent ("off"). */
  readonly metricsListen?: HostPort;
  /** Sent as `identifier` in Watch messages. */
  readonly nodeName: string;
  /** Aligned IPv4 CIDR the instances' /30s are taken from. */
  readonly pool: string;
  /** MTU of the TAPs; "auto" takes the MTU of the default route's interface. */
  readonly mtu: number | "auto";
  /** Whether 127.0.0.1:<port> on the node reaches the guests. */
  readonly localhost: boolean;
  /** Host ports Functions may expose. */
  readonly hostPorts: { readonly min: number; readonly max: number };
  /** Host ports never exposed, besides 22 and the service's own TCP ports. */
  readonly reservedPorts: readonly number[];
  readonly logLevel: LogLevel;
  /** Absolute path of the directory of the durable instance store. */
  readonly stateDir: string;
  /** Period of the drift-repairing resync; 0 turns it off. */
  readonly resyncIntervalMs: number;
  /** TAPs kept made ahead of CREATEs; 0 turns them off. */
  readonly spareTaps: number;
  /** TUNSETOWNER of every TAP: the uid of a VMM without CAP_NET_ADMIN (a jailer's --uid); root only when absent. */
  readonly tapOwner?: number;
  /** TUNSETGROUP of every TAP: a gid whose members may attach to the TAPs; root only when absent. */
  readonly tapGroup?: number;
  /** Exposure entries one instance may have. */
  readonly maxPortsPerInstance: number;
  readonly firewallBackend: FirewallBackend;
  /** Which iptables binaries the iptables backend runs. */
  readonly iptablesBackend: IptablesBackend;
  /** The binaries matching `iptablesBackend`. */
  readonly iptables: IptablesCommands;
  /** Destinations (IPv4 CIDRs) guests never reach; empty when turned off with "none". */
  readonly egressDeny: readonly string[];
}

/** The iptables binaries of one backend, IPv4 and IPv6. */
export interface IptablesCommands {
  readonly restoreCommand: string;
  readonly saveCommand: string;
  readonly restore6Command: string;
  readonly save6Command: string;
}

function commandsOf(infix: string): IptablesCommands {
  return {
    restoreCommand: `iptables${infix}-restore`,
    saveCommand: `iptables${infix}-save`,
    restore6Command: `ip6tables${infix}-restore`,
    save6Command: `ip6tables${infix}-save`,
  };
}

const iptablesCommands: Readonly<Record<IptablesBackend, IptablesCommands>> = {
  auto: commandsOf(""),
  nft: commandsOf("-nft"),
  legacy: commandsOf("-legacy"),
};

/**
 * Reads the configuration from the flags (`argv`, without the command) and the
 * environment, flags first. Throws a ConfigError naming the flag and the variable
 * of the first invalid value.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const values = parseFlags(argv);
  const given = (option: Option): Given | undefined => {
    const flagValue = values[option.flag];
    if (flagValue === "") throw invalid({ option, value: flagValue, source: `--${option.flag}` }, "cannot be empty");
    if (typeof flagValue === "boolean") return { option, value: String(flagValue), source: `--${option.flag}` };
    if (flagValue !== undefined) return { option, value: flagValue, source: `--${option.flag}` };
    const envValue = env[option.env];
    // An empty variable is how shells and unit files unset a setting.
    if (envValue !== undefined && envValue !== "") return { option, value: envValue, source: option.env };
    return undefined;
  };

  const socketGroup = given(options.socketGroup);
  const listen = tcpListen(given);
  const metrics = metricsListen(given(options.metricsListen));
  const iptablesBackend = backend(given(options.iptablesBackend));
  const instancePool = pool(given(options.pool));
  const tapOwner = numericId(given(options.tapOwner), "user");
  const tapGroup = numericId(given(options.tapGroup), "group");
  return {
    socketPath: socketPath(given(options.socket)),
    ...(socketGroup === undefined ? {} : { socketGroup: groupName(socketGroup) }),
    ...(listen === undefined ? {} : { listen }),
    ...(metrics === undefined ? {} : { metricsListen: metrics }),
    nodeName: nodeName(given(options.nodeName)),
    pool: instancePool,
    mtu: mtu(given(options.mtu)),
    localhost: booleanOr(given(options.localhost), true),
    hostPorts: hostPortRange(given(options.hostPorts)),
    reservedPorts: reservedPorts(given(options.reservedPorts)),
    logLevel: logLevel(given(options.logLevel)),
    stateDir: absolutePath(given(options.stateDir), "/var/lib/rik-network"),
    resyncIntervalMs: resyncInterval(given(options.resyncInterval)),
    spareTaps: spareTaps(given(options.spareTaps)),
    ...(tapOwner === undefined ? {} : { tapOwner }),
    ...(tapGroup === undefined ? {} : { tapGroup }),
    maxPortsPerInstance: maxPortsPerInstance(given(options.maxPortsPerInstance)),
    firewallBackend: firewallBackend(given(options.firewallBackend)),
    iptablesBackend,
    iptables: iptablesCommands[iptablesBackend],
    egressDeny: egressDeny(given(options.egressDeny), instancePool),
  };
}

function parseFlags(argv: readonly string[]): Record<string, string | boolean | undefined> {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: Object.fromEntries(
        (Object.values(options) as Option[]).map(({ flag, value }) => [
          flag,
          { type: value === undefined ? ("boolean" as const) : ("string" as const) },
        ]),
      ),
      strict: true,
      allowPositionals: false,
    });
    return values;
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}
