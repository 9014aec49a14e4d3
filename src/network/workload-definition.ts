import { NetworkError } from "./network-error.js";

/** RIK's `spec.function.exposure`: the node's `port` is forwarded to the guest's `targetPort`. */
export interface FunctionExposure {
  readonly port: number;
  readonly targetPort: number;
  readonly type: "NodePort";
}

export interface FunctionSpec {
  readonly execution: { readonly rootfs: string };
  readonly exposure?: FunctionExposure;
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

function parseExposure(fn: Json): FunctionExposure | undefined {
  const path = "spec.function.exposure";
  const exposure = fn["exposure"];
  if (exposure === undefined || exposure === null) return undefined;
  if (!isObject(exposure)) throw invalid(path, `must be an object {port, targetPort, type}, got ${describe(exposure)}`);
  const hostPort = port(exposure, "port", `${path}.port`);
  const targetPort = port(exposure, "targetPort", `${path}.targetPort`);
  const type = exposure["type"] ?? "NodePort";
  if (type !== "NodePort") throw invalid(`${path}.type`, `must be "NodePort", got ${describe(type)}`);
  return { port: hostPort, targetPort, type };
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
