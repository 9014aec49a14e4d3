import type { Protocol } from "./instance-network.js";
import { formatIpv4, parseIpv4 } from "./ipv4-cidr.js";
import { NetworkError } from "./network-error.js";

/** One entry of RIK's `spec.function.exposure`: the node's `port` is forwarded to the guest's `targetPort`. */
export interface FunctionExposure {
  readonly port: number;
  readonly targetPort: number;
  readonly protocol: Protocol;
  readonly type: "NodePort";
  /** The node address to bind to; every local address when absent. */
  readonly hostIP?: string;
}

export interface FunctionSpec {
  readonly execution: { readonly rootfs: string };
  /** RIK's single object or an array of them, always read as a list. */
  readonly exposure?: readonly FunctionExposure[];
}

/** RIK's JSON workload definition, as far as the network plane reads it. */
export interface WorkloadDefinition {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly replicas?: number;
  readonly spec: {
    readonly containers: readonly unknown[];
    readonly function?: FunctionSpec;
  };
}

type Json = Record<string, unknown>;

function invalid(field: string, problem: string): NetworkError {
  return new NetworkError("invalid-argument", `invalid workload definition: ${field} ${problem}`);
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function object(parent: Json, key: string, path: string): Json {
  const value = parent[key];
  if (value === undefined) throw invalid(path, "is required");
  if (!isObject(value)) throw invalid(path, `must be an object, got ${describe(value)}`);
  return value;
}

function string(parent: Json, key: string, path: string): string {
  const value = parent[key];
  if (value === undefined) throw invalid(path, "is required");
  if (typeof value !== "string") throw invalid(path, `must be a string, got ${describe(value)}`);
  if (value.trim() === "") throw invalid(path, "must not be empty");
  return value;
}

function port(parent: Json, key: string, path: string): number {
  const value = parent[key];
  if (value === undefined) throw invalid(path, "is required");
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw invalid(path, `must be an integer port number, got ${describe(value)}`);
  }
  if (value < 1 || value > 65535) throw invalid(path, `must be between 1 and 65535, got ${value}`);
  return value;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

const protocols: Readonly<Record<string, Protocol>> = { tcp: "tcp", udp: "udp" };

function parseExposureEntry(entry: unknown, path: string): FunctionExposure {
  if (!isObject(entry)) {
    throw invalid(path, `must be an object {port, targetPort, protocol, type, hostIP}, got ${describe(entry)}`);
  }
  const hostPort = port(entry, "port", `${path}.port`);
  const targetPort = port(entry, "targetPort", `${path}.targetPort`);
  const type = entry["type"] ?? "NodePort";
  if (type !== "NodePort") throw invalid(`${path}.type`, `must be "NodePort", got ${describe(type)}`);
  const rawProtocol = entry["protocol"] ?? "TCP";
  const protocol = typeof rawProtocol === "string" ? protocols[rawProtocol.toLowerCase()] : undefined;
  if (protocol === undefined) throw invalid(`${path}.protocol`, `must be "TCP" or "UDP", got ${describe(rawProtocol)}`);
  const hostIP = entry["hostIP"];
  if (hostIP === undefined || hostIP === null || hostIP === "") return { port: hostPort, targetPort, protocol, type };
  if (typeof hostIP !== "string" || parseIpv4(hostIP) === undefined) {
    throw invalid(`${path}.hostIP`, `must be an IPv4 address of the node such as "192.0.2.10", got ${describe(hostIP)}`);
  }
  const address = parseIpv4(hostIP)!;
  if (address === 0 || address >>> 28 >= 14) {
    throw invalid(`${path}.hostIP`, `must be a unicast address of the node, got ${hostIP}`);
  }
  return { port: hostPort, targetPort, protocol, type, hostIP: formatIpv4(address) };
}

function parseExposure(fn: Json): FunctionExposure[] | undefined {
  const path = "spec.function.exposure";
  const exposure = fn["exposure"];
  if (exposure === undefined || exposure === null) return undefined;
  const entries = Array.isArray(exposure)
    ? exposure.map((entry, index) => parseExposureEntry(entry, `${path}[${index}]`))
    : [parseExposureEntry(exposure, path)];
  // Two entries on one protocol and port would be two DNATs of which only the first ever matches.
  const seen = new Map<string, number>();
  entries.forEach((entry, index) => {
    const key = `${entry.protocol}/${entry.port}`;
    const first = seen.get(key);
    if (first !== undefined) {
      throw invalid(
        `${path}[${index}].port`,
        `${entry.port}/${entry.protocol.toUpperCase()} is already exposed by ${path}[${first}]; each host port and protocol may appear once`,
      );
    }
    seen.set(key, index);
  });
  return entries;
}

function parseFunction(spec: Json, required: boolean): FunctionSpec | undefined {
  const path = "spec.function";
  if (spec["function"] === undefined || spec["function"] === null) {
    if (required) throw invalid(path, "is required for a Function workload");
    return undefined;
  }
  const fn = object(spec, "function", path);
  const execution = object(fn, "execution", `${path}.execution`);
  const rootfs = string(execution, "rootfs", `${path}.execution.rootfs`);
  const exposure = parseExposure(fn);
  return exposure === undefined ? { execution: { rootfs } } : { execution: { rootfs }, exposure };
}

/**
 * Parses and validates RIK's workload definition. Throws NetworkError "invalid-argument"
 * naming the offending field, before anything touches the host.
 */
export function parseWorkloadDefinition(text: string): WorkloadDefinition {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (error) {
    throw new NetworkError(
      "invalid-argument",
      `invalid workload definition: not valid JSON (${(error as Error).message})`,
      { cause: error },
    );
  }
  if (!isObject(root)) throw invalid("the definition", `must be a JSON object, got ${describe(root)}`);
  const apiVersion = string(root, "apiVersion", "apiVersion");
  const kind = string(root, "kind", "kind");
  const name = string(root, "name", "name");
  let replicas: number | undefined;
  if (root["replicas"] !== undefined && root["replicas"] !== null) {
    const value = root["replicas"];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 65535) {
      throw invalid("replicas", `must be an integer between 0 and 65535, got ${describe(value)}`);
    }
    replicas = value;
  }
  const spec = object(root, "spec", "spec");
  const containers = spec["containers"] ?? [];
  if (!Array.isArray(containers)) throw invalid("spec.containers", `must be an array, got ${describe(containers)}`);
  const fn = parseFunction(spec, kind === "Function");
  return {
    apiVersion,
    kind,
    name,
    ...(replicas === undefined ? {} : { replicas }),
    spec: fn === undefined ? { containers } : { containers, function: fn },
  };
}
