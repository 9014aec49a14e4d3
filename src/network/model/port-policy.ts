import type { PortMapping } from "./instance-network.js";
import { NetworkError } from "./network-error.js";

/** Which host ports a Function may expose: a range, minus ports the node keeps for itself. */
export interface PortPolicyOptions {
  readonly min: number;
  readonly max: number;
  /** Never exposed whatever the range, e.g. 22 and the service's own TCP ports. */
  readonly reserved: readonly number[];
}

/**
 * Everything below Linux's default ephemeral range (32768-60999): ports above it are the
 * source ports of the node's own outgoing connections, whose bound sockets would make
 * creates fail at random, and they are what other tools hand out dynamically.
 */
export const DEFAULT_HOST_PORTS = { min: 1, max: 32767 } as const;

/** sshd: a DNAT on 22 would take the node's remote access away. */
export const ALWAYS_RESERVED_PORTS: readonly number[] = [22];

export class PortPolicy {
  readonly min: number;
  readonly max: number;
  readonly reserved: readonly number[];
  private readonly reservedSet: ReadonlySet<number>;

  constructor(options: PortPolicyOptions) {
    if (!(Number.isInteger(options.min) && Number.isInteger(options.max) && 1 <= options.min && options.min <= options.max && options.max <= 65535)) {
      throw new NetworkError("invalid-argument", `port policy range ${options.min}-${options.max} must satisfy 1 <= min <= max <= 65535`);
    }
    this.min = options.min;
    this.max = options.max;
    this.reserved = [...new Set([...ALWAYS_RESERVED_PORTS, ...options.reserved])].sort((a, b) => a - b);
    this.reservedSet = new Set(this.reserved);
  }

  /** "host ports 1-32767 except 22, 9464", as operators configure it. */
  toString(): string {
    return `host ports ${this.min}-${this.max} except ${this.reserved.join(", ")}`;
  }

  /** Throws "invalid-argument" naming the policy when `port` may not be exposed. */
  check(port: PortMapping): void {
    const what = `host port ${port.hostPort}/${port.protocol.toUpperCase()}`;
    const fix = "pick another port, or change the node's --host-ports / --reserved-ports";
    if (this.reservedSet.has(port.hostPort)) {
      throw new NetworkError("invalid-argument", `${what} is reserved by the node's port policy (${this.toString()}); ${fix}`);
    }
    if (port.hostPort < this.min || port.hostPort > this.max) {
      throw new NetworkError("invalid-argument", `${what} is outside the node's port policy (${this.toString()}); ${fix}`);
    }
  }
}
