import { hostname } from "node:os";
import { isIPv6 } from "node:net";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { logLevels, type LogLevel } from "../logger.js";
import { Ipv4Cidr } from "../network/model/ipv4-cidr.js";
import { ALWAYS_RESERVED_PORTS, DEFAULT_HOST_PORTS } from "../network/model/port-policy.js";
import { DEFAULT_SPARE_TAPS, MAX_SPARE_TAPS } from "../network/strategies/function/spare-taps.js";
import { DEFAULT_EGRESS_DENY } from "../network/firewall/iptables/iptables-rules.js";
import { MAX_ID } from "../network/kernel/tun-ids.mjs";
import { DEFAULT_MAX_PORTS_PER_INSTANCE, MAX_PORTS_PER_INSTANCE_LIMIT } from "../network/model/exposure-limit.js";

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

/** An invalid flag or environment variable; the message says which, and what is expected. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

interface Option {
  readonly flag: string;
  readonly env: string;
  /** Placeholder of the value in the help; absent for a boolean flag. */
  readonly value?: string;
  /** One line of help, ending with the default. */
  readonly help: string;
}

const options = {
  socket: {
    flag: "socket",
    env: "RIK_NETWORK_SOCKET",
    value: "PATH",
    help: "unix socket to serve on, mode 0600 (default /run/rik-network/rik-network.sock)",
  },
  socketGroup: {
    flag: "socket-group",
    env: "RIK_NETWORK_SOCKET_GROUP",
    value: "NAME",
    help: "also let this group use the socket (chgrp, mode 0660) (default: root only)",
  },
  listen: {
    flag: "listen",
    env: "RIK_NETWORK_LISTEN",
    value: "HOST:PORT",
    help: "also serve on TCP, with mTLS (--tls-*) or --insecure-tcp (default: the unix socket only)",
  },
  tlsCert: {
    flag: "tls-cert",
    env: "RIK_NETWORK_TLS_CERT",
    value: "FILE",
    help: "PEM certificate (chain) of the TCP listener (required with --listen)",
  },
  tlsKey: {
    flag: "tls-key",
    env: "RIK_NETWORK_TLS_KEY",
    value: "FILE",
    help: "PEM private key of --tls-cert (required with --listen)",
  },
  tlsClientCa: {
    flag: "tls-client-ca",
    env: "RIK_NETWORK_TLS_CLIENT_CA",
    value: "FILE",
    help: "PEM CA(s) that client certificates must chain to (required with --listen)",
  },
  insecureTcp: {
    flag: "insecure-tcp",
    env: "RIK_NETWORK_INSECURE_TCP",
    help: "serve --listen without TLS; anyone who reaches it can rewire the node (default false)",
  },
  metricsListen: {
    flag: "metrics-listen",
    env: "RIK_NETWORK_METRICS_LISTEN",
    value: "HOST:PORT",
    help: "Prometheus endpoint (/metrics), or off (default 127.0.0.1:9464)",
  },
  nodeName: {
    flag: "node-name",
    env: "RIK_NETWORK_NODE_NAME",
    value: "NAME",
    help: "identifier of the node in Watch messages (default: the hostname)",
  },
  pool: {
    flag: "pool",
    env: "RIK_NETWORK_POOL",
    value: "CIDR",
    help: "IPv4 pool the instances' /30s come from, /8 to /30 (default 10.220.0.0/16)",
  },
  mtu: {
    flag: "mtu",
    env: "RIK_NETWORK_MTU",
    value: "N",
    help: "MTU of every TAP, 68 to 65535, or auto: the MTU of the default route's interface (default auto)",
  },
  hostPorts: {
    flag: "host-ports",
    env: "RIK_NETWORK_HOST_PORTS",
    value: "MIN-MAX",
    help: `host ports Functions may expose (default ${DEFAULT_HOST_PORTS.min}-${DEFAULT_HOST_PORTS.max}: below the ephemeral range)`,
  },
  reservedPorts: {
    flag: "reserved-ports",
    env: "RIK_NETWORK_RESERVED_PORTS",
    value: "LIST",
    help: `comma-separated host ports never exposed; ${ALWAYS_RESERVED_PORTS.join(", ")} and the service's own TCP ports always are (default none more)`,
  },
  localhost: {
    flag: "localhost",
    env: "RIK_NETWORK_LOCALHOST",
    value: "BOOL",
    help: "let processes on the node reach exposed ports on 127.0.0.1 (route_localnet on each TAP) (default true)",
  },
  stateDir: {
    flag: "state-dir",
    env: "RIK_NETWORK_STATE_DIR",
    value: "DIR",
    help: "directory of the durable instance state (default /var/lib/rik-network)",
  },
  resyncInterval: {
    flag: "resync-interval",
    env: "RIK_NETWORK_RESYNC_INTERVAL",
    value: "SECONDS",
    help: "period of the drift-repairing resync, 0 = off (default 30)",
  },
  spareTaps: {
    flag: "spare-taps",
    env: "RIK_NETWORK_SPARE_TAPS",
    value: "N",
    help: `TAPs kept made ahead of time, so that a CREATE renames one instead of making its own; 0 to ${MAX_SPARE_TAPS} (default ${DEFAULT_SPARE_TAPS})`,
  },
  tapOwner: {
    flag: "tap-owner",
    env: "RIK_NETWORK_TAP_OWNER",
    value: "UID",
    help: "numeric user id that may attach to every TAP without CAP_NET_ADMIN, e.g. the Firecracker jailer's --uid (default: root only)",
  },
  tapGroup: {
    flag: "tap-group",
    env: "RIK_NETWORK_TAP_GROUP",
    value: "GID",
    help: "numeric group id whose members may attach to every TAP without CAP_NET_ADMIN; with --tap-owner, a VMM must be both (default: root only)",
  },
  maxPortsPerInstance: {
    flag: "max-ports-per-instance",
    env: "RIK_NETWORK_MAX_PORTS_PER_INSTANCE",
    value: "N",
    help: `exposure entries one instance may have, 0 to ${MAX_PORTS_PER_INSTANCE_LIMIT} (default ${DEFAULT_MAX_PORTS_PER_INSTANCE})`,
  },
  iptablesBackend: {
    flag: "iptables-backend",
    env: "RIK_NETWORK_IPTABLES_BACKEND",
    value: "NAME",
    help: "auto, nft or legacy: runs iptables-[nft-|legacy-]restore and -save (default auto)",
  },
  egressDeny: {
    flag: "egress-deny",
    env: "RIK_NETWORK_EGRESS_DENY",
    value: "LIST",
    help: `comma-separated IPv4 CIDRs guests never reach, forwarded or on the node, or none (default ${DEFAULT_EGRESS_DENY.join(",")}: link-local and cloud metadata)`,
  },
  logLevel: {
    flag: "log-level",
    env: "RIK_NETWORK_LOG_LEVEL",
    value: "LEVEL",
    help: "error, warn, info or debug (default info)",
  },
} as const satisfies Record<string, Option>;

/** Every flag with its environment variable, for the checks that the help and the README list them all. */
export const flagTable: readonly { readonly flag: string; readonly env: string }[] = Object.values(options);

function usageLines(): string[] {
  return (Object.values(options) as Option[]).flatMap((option) => [
    `  --${option.flag}${option.value === undefined ? "" : ` ${option.value}`}  [${option.env}]`,
    `      ${option.help}`,
  ]);
}

/** The help of `rik-network serve`, generated from the option table so that it lists every flag. */
export const usage = `Usage: rik-network serve [options]

Serves the network plane of a RIK worker node (TAPs, /30s, iptables) over gRPC.
"serve" is the default command: "rik-network [options]" serves too.

Options, each also read from the environment variable in brackets (the flag wins):
${usageLines().join("\n")}
  --help, -h
      print this help and exit
`;

/** sun_path holds 108 bytes, including the terminating NUL. */
const maxSocketPathBytes = 107;

/** Longer periods would overflow setTimeout; a day is plenty for a drift repair. */
const maxResyncIntervalSeconds = 86_400;

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

/** A value and where it came from, so that an error can point at it. */
interface Given {
  readonly option: Option;
  readonly value: string;
  readonly source: string;
}

function invalid(given: Given, expected: string): ConfigError {
  const { option, value, source } = given;
  return new ConfigError(
    `invalid value "${value}" for --${option.flag} / ${option.env} (from ${source}): ${expected}`,
  );
}

function socketPath(given: Given | undefined): string {
  const path = absolutePath(given, "/run/rik-network/rik-network.sock");
  if (given !== undefined && Buffer.byteLength(path) > maxSocketPathBytes) {
    throw invalid(given, `a unix socket path is at most ${maxSocketPathBytes} bytes long, and this one is ${path}`);
  }
  return path;
}

function absolutePath(given: Given | undefined, fallback: string): string {
  return given === undefined ? fallback : resolve(given.value);
}

function groupName(given: Given): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(given.value)) {
    throw invalid(given, "expected a group name (e.g. rik) or a numeric group id");
  }
  return given.value;
}

function hostPort(given: Given): HostPort {
  const match = /^\[(?<ipv6>[^\]]+)\]:(?<bracketedPort>\d+)$|^(?<host>[^:[\]]+):(?<port>\d+)$/.exec(given.value);
  const host = match?.groups?.ipv6 ?? match?.groups?.host;
  const port = Number(match?.groups?.bracketedPort ?? match?.groups?.port);
  if (host === undefined || (match?.groups?.ipv6 !== undefined && !isIPv6(host))) {
    throw invalid(given, "expected HOST:PORT, e.g. 127.0.0.1:7100, or [IPV6]:PORT, e.g. [::1]:7100");
  }
  if (!(port <= 65535)) throw invalid(given, "the port must be between 0 and 65535 (0 picks a free one)");
  return { host, port };
}

function flagNames(...list: Option[]): string {
  return list.map((option) => `--${option.flag}`).join(", ");
}

/** --listen and how it is secured: mTLS by default, plain TCP only when asked for by name. */
function tcpListen(given: (option: Option) => Given | undefined): TcpListenConfig | undefined {
  const listen = given(options.listen);
  const tlsOptions = [options.tlsCert, options.tlsKey, options.tlsClientCa];
  const tls = tlsOptions.map((option) => given(option));
  const insecure = given(options.insecureTcp);
  const insecureTcp = insecure === undefined ? false : boolean(insecure);
  const present = tlsOptions.filter((_, index) => tls[index] !== undefined);

  if (listen === undefined) {
    const stray = [...present, ...(insecureTcp ? [options.insecureTcp] : [])];
    if (stray.length > 0) {
      throw new ConfigError(`${flagNames(...stray)} only apply to the TCP listener: pass --listen HOST:PORT too, or drop them`);
    }
    return undefined;
  }
  const address = hostPort(listen);
  if (insecureTcp) {
    if (present.length > 0) {
      throw new ConfigError(`--insecure-tcp serves plain TCP, so ${flagNames(...present)} would be ignored: pass either the TLS files or --insecure-tcp`);
    }
    return { ...address, tls: "insecure" };
  }
  const [cert, key, clientCa] = tls;
  if (cert === undefined || key === undefined || clientCa === undefined) {
    const missing = tlsOptions.filter((_, index) => tls[index] === undefined);
    throw new ConfigError(
      `--listen ${listen.value} serves TCP with TLS and verifies client certificates (mTLS), so it needs ` +
        `${missing.map((option) => `--${option.flag} FILE (${option.env})`).join(", ")}; ` +
        "or pass --insecure-tcp to serve plain TCP, which lets anyone who can reach the port rewire the node's network",
    );
  }
  return {
    ...address,
    tls: { certPath: resolve(cert.value), keyPath: resolve(key.value), clientCaPath: resolve(clientCa.value) },
  };
}

function boolean(given: Given): boolean {
  if (/^(true|1|yes|on)$/i.test(given.value)) return true;
  if (/^(false|0|no|off)$/i.test(given.value)) return false;
  throw invalid(given, "expected true or false");
}

function metricsListen(given: Given | undefined): HostPort | undefined {
  if (given === undefined) return { host: "127.0.0.1", port: 9464 };
  if (given.value === "off") return undefined;
  return hostPort(given);
}

function nodeName(given: Given | undefined): string {
  if (given === undefined) return hostname();
  if (/\s/.test(given.value)) throw invalid(given, "a node name cannot contain whitespace");
  return given.value;
}

function pool(given: Given | undefined): string {
  if (given === undefined) return "10.220.0.0/16";
  let cidr: Ipv4Cidr;
  try {
    cidr = Ipv4Cidr.parse(given.value);
  } catch (error) {
    throw invalid(given, (error as Error).message);
  }
  if (cidr.prefixLength < 8 || cidr.prefixLength > 30) {
    throw invalid(given, "the prefix length must be between 8 and 30, since each instance takes a /30");
  }
  return cidr.toString();
}

function booleanOr(given: Given | undefined, fallback: boolean): boolean {
  return given === undefined ? fallback : boolean(given);
}

function portNumber(text: string): number | undefined {
  const value = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return value >= 1 && value <= 65535 ? value : undefined;
}

function hostPortRange(given: Given | undefined): { min: number; max: number } {
  if (given === undefined) return { ...DEFAULT_HOST_PORTS };
  const [min, max] = given.value.split("-").map((part) => portNumber(part.trim()));
  if (min === undefined || max === undefined || given.value.split("-").length !== 2 || min > max) {
    throw invalid(given, "expected MIN-MAX, two ports between 1 and 65535 with MIN <= MAX, e.g. 1024-32767");
  }
  return { min, max };
}

function reservedPorts(given: Given | undefined): number[] {
  if (given === undefined) return [];
  const ports = given.value.split(",").map((part) => part.trim()).filter((part) => part !== "").map(portNumber);
  if (ports.some((port) => port === undefined)) {
    throw invalid(given, "expected comma-separated ports between 1 and 65535, e.g. 22,2379,10250");
  }
  return ports as number[];
}

function mtu(given: Given | undefined): number | "auto" {
  if (given === undefined || given.value === "auto") return "auto";
  const value = /^\d+$/.test(given.value) ? Number(given.value) : NaN;
  if (!(value >= 68 && value <= 65535)) throw invalid(given, "expected auto or an integer between 68 and 65535");
  return value;
}

function resyncInterval(given: Given | undefined): number {
  if (given === undefined) return 30_000;
  const seconds = /^\d+(\.\d+)?$/.test(given.value) ? Number(given.value) : NaN;
  if (!(seconds <= maxResyncIntervalSeconds)) {
    throw invalid(given, `expected seconds between 0 (off) and ${maxResyncIntervalSeconds}, e.g. 30 or 0.5`);
  }
  return Math.round(seconds * 1000);
}

function spareTaps(given: Given | undefined): number {
  if (given === undefined) return DEFAULT_SPARE_TAPS;
  const value = /^\d+$/.test(given.value) ? Number(given.value) : NaN;
  if (!(value <= MAX_SPARE_TAPS)) throw invalid(given, `expected an integer between 0 (off) and ${MAX_SPARE_TAPS}`);
  return value;
}

function egressDeny(given: Given | undefined, instancePool: string): string[] {
  if (given === undefined) return [...DEFAULT_EGRESS_DENY];
  if (given.value.trim() === "none") return [];
  const pool = Ipv4Cidr.parse(instancePool);
  const cidrs: string[] = [];
  for (const part of given.value.split(",").map((text) => text.trim())) {
    let cidr: Ipv4Cidr;
    try {
      cidr = Ipv4Cidr.parse(part);
    } catch (error) {
      throw invalid(given, `expected none or comma-separated IPv4 CIDRs, e.g. 169.254.0.0/16,192.168.0.0/16: ${(error as Error).message}`);
    }
    // Denying the pool would refuse the guests' replies and hairpin, not some outside destination.
    if (cidr.overlaps(pool)) throw invalid(given, `${cidr.toString()} overlaps the instances' pool ${pool.toString()}; deny ranges outside --pool`);
    if (!cidrs.includes(cidr.toString())) cidrs.push(cidr.toString());
  }
  return cidrs;
}

/** A uid or gid as the kernel takes it: (u32)-1 means none, and names are the jailer's business. */
function numericId(given: Given | undefined, kind: "user" | "group"): number | undefined {
  if (given === undefined) return undefined;
  const value = /^\d{1,10}$/.test(given.value) ? Number(given.value) : NaN;
  if (!(value <= MAX_ID)) throw invalid(given, `expected a numeric ${kind} id from 0 to ${MAX_ID}, e.g. 65534`);
  return value;
}

function maxPortsPerInstance(given: Given | undefined): number {
  if (given === undefined) return DEFAULT_MAX_PORTS_PER_INSTANCE;
  const value = /^\d{1,5}$/.test(given.value) ? Number(given.value) : NaN;
  if (!(value <= MAX_PORTS_PER_INSTANCE_LIMIT)) throw invalid(given, `expected an integer between 0 and ${MAX_PORTS_PER_INSTANCE_LIMIT}`);
  return value;
}

function backend(given: Given | undefined): IptablesBackend {
  return oneOf(given, ["auto", "nft", "legacy"] as const, "auto");
}

function logLevel(given: Given | undefined): LogLevel {
  return oneOf(given, logLevels, "info");
}

function oneOf<T extends string>(given: Given | undefined, accepted: readonly T[], fallback: T): T {
  if (given === undefined) return fallback;
  const value = accepted.find((candidate) => candidate === given.value);
  if (value === undefined) throw invalid(given, `expected one of ${accepted.join(", ")}`);
  return value;
}
