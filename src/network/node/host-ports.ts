import type { Rtnetlink } from "../kernel/rtnetlink/rtnetlink.js";
import { hostListeners, shadowedListener } from "../kernel/host-listeners.js";
import type { SockDiag } from "../kernel/sock-diag.js";
import { checkExposureCount, DEFAULT_MAX_PORTS_PER_INSTANCE } from "../model/exposure-limit.js";
import type { PortMapping } from "../model/instance-network.js";
import { parseIpv4, type Ipv4Cidr } from "../model/ipv4-cidr.js";
import { NetworkError } from "../model/network-error.js";
import type { PortPolicy } from "../model/port-policy.js";

export interface HostPortsOptions {
  readonly pool: Ipv4Cidr;
  /** Whether 127.0.0.1:<port> on the node reaches the guests: a hostIP of 127.x needs it. */
  readonly localhost: boolean;
  readonly portPolicy: PortPolicy;
  /** Exposure entries one instance may have. Default DEFAULT_MAX_PORTS_PER_INSTANCE. */
  readonly maxPortsPerInstance?: number;
  readonly rtnetlink: Rtnetlink;
  readonly sockDiag: SockDiag;
}

/** Who holds a host port: an instance, on one node address or (hostIp undefined) on all of them. */
interface PortHolder {
  readonly instanceId: string;
  readonly hostIp: string | undefined;
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

/**
 * The node's host ports, whatever kind of instance exposes them: what an instance may expose
 * (the port policy, the limit per instance), which instance holds each port, and whether a
 * socket of the node already receives on it. Conflicts are refused before anything is
 * recorded or touched.
 */
export class HostPorts {
  private readonly options: HostPortsOptions;
  /** Who holds each host port ("tcp/8080"). */
  private readonly holders = new Map<string, PortHolder[]>();

  constructor(options: HostPortsOptions) {
    this.options = options;
  }

  /** Refuses more ports than the node allows an instance, and what the port policy forbids. */
  checkPolicy(ports: readonly PortMapping[]): void {
    checkExposureCount(ports.length, this.options.maxPortsPerInstance ?? DEFAULT_MAX_PORTS_PER_INSTANCE);
    for (const port of ports) this.options.portPolicy.check(port);
  }

  /** Refuses, with no await, a port another instance holds. */
  checkFree(instanceId: string, ports: readonly PortMapping[]): void {
    for (const port of ports) {
      const holder = (this.holders.get(portKey(port)) ?? []).find((h) => h.instanceId !== instanceId && clashes(h, port));
      if (holder !== undefined) {
        throw new NetworkError(
          "already-exists",
          `${portText(port)} is already exposed by instance "${holder.instanceId}"; pick another port or destroy that instance`,
        );
      }
    }
  }

  /**
   * Refuses a hostIP that is not the node's, and a host port that a socket on the node
   * receives on (the DNAT would silently take its traffic).
   */
  async checkNode(ports: readonly PortMapping[]): Promise<void> {
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

  /** Records `instanceId` as the holder of `ports` (replacing what it held of them). */
  reserve(instanceId: string, ports: readonly PortMapping[]): void {
    for (const port of ports) {
      const holders = (this.holders.get(portKey(port)) ?? []).filter((h) => h.instanceId !== instanceId);
      this.holders.set(portKey(port), [...holders, { instanceId, hostIp: port.hostIp }]);
    }
  }

  release(instanceId: string, ports: readonly PortMapping[]): void {
    for (const port of ports) {
      const holders = (this.holders.get(portKey(port)) ?? []).filter((h) => h.instanceId !== instanceId);
      if (holders.length === 0) this.holders.delete(portKey(port));
      else this.holders.set(portKey(port), holders);
    }
  }
}
