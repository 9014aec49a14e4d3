/*
 * Each validator takes one setting as given (undefined when neither its flag nor its variable
 * is set, which picks the default) and returns the typed value, or throws through invalid(),
 * so that every message names the flag, the variable and where the value came from.
 */
import { hostname } from "node:os";
import { isIPv6 } from "node:net";
import { resolve } from "node:path";
import { logLevels, type LogLevel } from "../logger.js";
import { Ipv4Cidr } from "../network/model/ipv4-cidr.js";
import { DEFAULT_HOST_PORTS } from "../network/model/port-policy.js";
import { DEFAULT_SPARE_TAPS, MAX_SPARE_TAPS } from "../network/model/spare-count.js";
import { DEFAULT_EGRESS_DENY } from "../network/firewall/firewall.js";
import { MAX_ID } from "../network/kernel/tun-ids.mjs";
import { DEFAULT_MAX_PORTS_PER_INSTANCE, MAX_PORTS_PER_INSTANCE_LIMIT } from "../network/model/exposure-limit.js";
import { ConfigError, invalid, type Given } from "./config-error.js";
import type { FirewallBackend, HostPort, IptablesBackend, TcpListenConfig } from "./load-config.js";
import { options, type Option } from "./options.js";

/** sun_path holds 108 bytes, including the terminating NUL. */
const maxSocketPathBytes = 107;

/** Longer periods would overflow setTimeout; a day is plenty for a drift repair. */
const maxResyncIntervalSeconds = 86_400;

export function socketPath(given: Given | undefined): string {
  const path = absolutePath(given, "/run/rik-network/rik-network.sock");
  if (given !== undefined && Buffer.byteLength(path) > maxSocketPathBytes) {
    throw invalid(given, `a unix socket path is at most ${maxSocketPathBytes} bytes long, and this one is ${path}`);
  }
  return path;
}

export function absolutePath(given: Given | undefined, fallback: string): string {
  return given === undefined ? fallback : resolve(given.value);
}

export function groupName(given: Given): string {
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
export function tcpListen(given: (option: Option) => Given | undefined): TcpListenConfig | undefined {
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

export function metricsListen(given: Given | undefined): HostPort | undefined {
  if (given === undefined) return { host: "127.0.0.1", port: 9464 };
  if (given.value === "off") return undefined;
  return hostPort(given);
}

export function nodeName(given: Given | undefined): string {
  if (given === undefined) return hostname();
  if (/\s/.test(given.value)) throw invalid(given, "a node name cannot contain whitespace");
  return given.value;
}

export function pool(given: Given | undefined): string {
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

export function booleanOr(given: Given | undefined, fallback: boolean): boolean {
  return given === undefined ? fallback : boolean(given);
}

function portNumber(text: string): number | undefined {
  const value = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return value >= 1 && value <= 65535 ? value : undefined;
}

export function hostPortRange(given: Given | undefined): { min: number; max: number } {
  if (given === undefined) return { ...DEFAULT_HOST_PORTS };
  const [min, max] = given.value.split("-").map((part) => portNumber(part.trim()));
  if (min === undefined || max === undefined || given.value.split("-").length !== 2 || min > max) {
    throw invalid(given, "expected MIN-MAX, two ports between 1 and 65535 with MIN <= MAX, e.g. 1024-32767");
  }
  return { min, max };
}

export function reservedPorts(given: Given | undefined): number[] {
  if (given === undefined) return [];
  const ports = given.value.split(",").map((part) => part.trim()).filter((part) => part !== "").map(portNumber);
  if (ports.some((port) => port === undefined)) {
    throw invalid(given, "expected comma-separated ports between 1 and 65535, e.g. 22,2379,10250");
  }
  return ports as number[];
}

export function mtu(given: Given | undefined): number | "auto" {
  if (given === undefined || given.value === "auto") return "auto";
  const value = /^\d+$/.test(given.value) ? Number(given.value) : NaN;
  if (!(value >= 68 && value <= 65535)) throw invalid(given, "expected auto or an integer between 68 and 65535");
  return value;
}

export function resyncInterval(given: Given | undefined): number {
  if (given === undefined) return 30_000;
  const seconds = /^\d+(\.\d+)?$/.test(given.value) ? Number(given.value) : NaN;
  if (!(seconds <= maxResyncIntervalSeconds)) {
    throw invalid(given, `expected seconds between 0 (off) and ${maxResyncIntervalSeconds}, e.g. 30 or 0.5`);
  }
  return Math.round(seconds * 1000);
}

export function spareTaps(given: Given | undefined): number {
  if (given === undefined) return DEFAULT_SPARE_TAPS;
  const value = /^\d+$/.test(given.value) ? Number(given.value) : NaN;
  if (!(value <= MAX_SPARE_TAPS)) throw invalid(given, `expected an integer between 0 (off) and ${MAX_SPARE_TAPS}`);
  return value;
}

export function egressDeny(given: Given | undefined, instancePool: string): string[] {
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
export function numericId(given: Given | undefined, kind: "user" | "group"): number | undefined {
  if (given === undefined) return undefined;
  const value = /^\d{1,10}$/.test(given.value) ? Number(given.value) : NaN;
  if (!(value <= MAX_ID)) throw invalid(given, `expected a numeric ${kind} id from 0 to ${MAX_ID}, e.g. 65534`);
  return value;
}

export function maxPortsPerInstance(given: Given | undefined): number {
  if (given === undefined) return DEFAULT_MAX_PORTS_PER_INSTANCE;
  const value = /^\d{1,5}$/.test(given.value) ? Number(given.value) : NaN;
  if (!(value <= MAX_PORTS_PER_INSTANCE_LIMIT)) throw invalid(given, `expected an integer between 0 and ${MAX_PORTS_PER_INSTANCE_LIMIT}`);
  return value;
}

export function backend(given: Given | undefined): IptablesBackend {
  return oneOf(given, ["auto", "nft", "legacy"] as const, "auto");
}

export function firewallBackend(given: Given | undefined): FirewallBackend {
  return oneOf(given, ["auto", "nft", "iptables"] as const, "auto");
}

export function logLevel(given: Given | undefined): LogLevel {
  return oneOf(given, logLevels, "info");
}

function oneOf<T extends string>(given: Given | undefined, accepted: readonly T[], fallback: T): T {
  if (given === undefined) return fallback;
  const value = accepted.find((candidate) => candidate === given.value);
  if (value === undefined) throw invalid(given, `expected one of ${accepted.join(", ")}`);
  return value;
}
