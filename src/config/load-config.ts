import { hostname } from "node:os";
import { isIPv6 } from "node:net";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { logLevels, type LogLevel } from "../logger.js";
import { Ipv4Cidr } from "../network/ipv4-cidr.js";

export interface Config {
  /** Absolute path of the unix socket to serve on. */
  readonly socketPath: string;
  /** TCP address to serve on as well; unix socket only when absent. */
  readonly listen?: { readonly host: string; readonly port: number };
  /** Sent as `identifier` in Watch messages. */
  readonly nodeName: string;
  /** Aligned IPv4 CIDR the instances' /30s are taken from. */
  readonly pool: string;
  readonly mtu: number;
  readonly logLevel: LogLevel;
}

/** An invalid flag or environment variable; the message says which, and what is expected. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export const usage = `Usage: rik-network [serve] [options]

Serves the network plane of a RIK worker node (TAPs, /30s, iptables) over gRPC.

Options, each also read from the environment (the flag wins):
  --socket PATH        RIK_NETWORK_SOCKET     unix socket to serve on
                                              (default /run/rik-network/rik-network.sock)
  --listen HOST:PORT   RIK_NETWORK_LISTEN     also serve on TCP, without TLS: bind it to loopback
                                              (default: the unix socket only)
  --node-name NAME     RIK_NETWORK_NODE_NAME  identifier of the node in Watch messages
                                              (default: the hostname)
  --pool CIDR          RIK_NETWORK_POOL       IPv4 pool the instances' /30s come from, /8 to /30
                                              (default 10.220.0.0/16)
  --mtu N              RIK_NETWORK_MTU        MTU of every TAP, 68 to 65535 (default 1500)
  --log-level LEVEL    RIK_NETWORK_LOG_LEVEL  error, warn, info or debug (default info)
  --help, -h                                  print this help and exit
`;

interface Option {
  readonly flag: string;
  readonly env: string;
}

const options = {
  socket: { flag: "socket", env: "RIK_NETWORK_SOCKET" },
  listen: { flag: "listen", env: "RIK_NETWORK_LISTEN" },
  nodeName: { flag: "node-name", env: "RIK_NETWORK_NODE_NAME" },
  pool: { flag: "pool", env: "RIK_NETWORK_POOL" },
  mtu: { flag: "mtu", env: "RIK_NETWORK_MTU" },
  logLevel: { flag: "log-level", env: "RIK_NETWORK_LOG_LEVEL" },
} as const satisfies Record<string, Option>;

/** sun_path holds 108 bytes, including the terminating NUL. */
const maxSocketPathBytes = 107;

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
    if (flagValue !== undefined) return { option, value: flagValue, source: `--${option.flag}` };
    const envValue = env[option.env];
    // An empty variable is how shells and unit files unset a setting.
    if (envValue !== undefined && envValue !== "") return { option, value: envValue, source: option.env };
    return undefined;
  };

  const listen = given(options.listen);
  return {
    socketPath: socketPath(given(options.socket)),
    ...(listen === undefined ? {} : { listen: listenAddress(listen) }),
    nodeName: nodeName(given(options.nodeName)),
    pool: pool(given(options.pool)),
    mtu: mtu(given(options.mtu)),
    logLevel: logLevel(given(options.logLevel)),
  };
}

function parseFlags(argv: readonly string[]): Record<string, string | undefined> {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: Object.fromEntries(Object.values(options).map(({ flag }) => [flag, { type: "string" as const }])),
      strict: true,
      allowPositionals: false,
    });
    return values as Record<string, string | undefined>;
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
  if (given === undefined) return "/run/rik-network/rik-network.sock";
  const path = resolve(given.value);
  if (Buffer.byteLength(path) > maxSocketPathBytes) {
    throw invalid(given, `a unix socket path is at most ${maxSocketPathBytes} bytes long, and this one is ${path}`);
  }
  return path;
}

function listenAddress(given: Given): { host: string; port: number } {
  const match = /^\[(?<ipv6>[^\]]+)\]:(?<bracketedPort>\d+)$|^(?<host>[^:[\]]+):(?<port>\d+)$/.exec(given.value);
  const host = match?.groups?.ipv6 ?? match?.groups?.host;
  const port = Number(match?.groups?.bracketedPort ?? match?.groups?.port);
  if (host === undefined || (match?.groups?.ipv6 !== undefined && !isIPv6(host))) {
    throw invalid(given, "expected HOST:PORT, e.g. 127.0.0.1:7100, or [IPV6]:PORT, e.g. [::1]:7100");
  }
  if (!(port <= 65535)) throw invalid(given, "the port must be between 0 and 65535 (0 picks a free one)");
  return { host, port };
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

function mtu(given: Given | undefined): number {
  if (given === undefined) return 1500;
  const value = /^\d+$/.test(given.value) ? Number(given.value) : NaN;
  if (!(value >= 68 && value <= 65535)) throw invalid(given, "expected an integer between 68 and 65535");
  return value;
}

function logLevel(given: Given | undefined): LogLevel {
  if (given === undefined) return "info";
  const level = logLevels.find((candidate) => candidate === given.value);
  if (level === undefined) throw invalid(given, `expected one of ${logLevels.join(", ")}`);
  return level;
}
