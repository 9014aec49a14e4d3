import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Logger } from "../logger.js";
import type { ApplyRequest, InstanceNetwork } from "./instance-network.js";
import { validateInstanceId } from "./instance-id.js";
import { KeyedLock } from "./keyed-lock.js";
import { NetworkError } from "./network-error.js";
import type { NetworkPlane } from "./network-plane.js";
import type { StrategyRegistry } from "./strategy-registry.js";
import { parseWorkloadDefinition, type WorkloadDefinition } from "./workload-definition.js";

interface InstanceRecord {
  network: InstanceNetwork;
  /** Digest of the parsed definition: a re-CREATE with the same one is a no-op. */
  readonly digest: string;
}

function digestOf(definition: WorkloadDefinition): string {
  return createHash("sha256").update(JSON.stringify(definition)).digest("hex");
}

/**
 * The node's instances and the single entry point for changing them. Validates input
 * before any strategy runs, serializes operations per instance, and announces changes.
 */
export class NetworkManager implements Omit<NetworkPlane, "stats"> {
  private readonly registry: StrategyRegistry;
  private readonly logger: Logger;
  private readonly records = new Map<string, InstanceRecord>();
  private readonly locks = new KeyedLock();
  private readonly events = new EventEmitter();
  private closed = false;

  constructor(registry: StrategyRegistry, logger: Logger) {
    this.registry = registry;
    this.logger = logger;
    this.events.setMaxListeners(0);
  }

  async start(): Promise<void> {
    for (const strategy of this.registry.strategies) await strategy.setupNode();
  }

  async apply(request: ApplyRequest): Promise<InstanceNetwork> {
    if (this.closed) throw new NetworkError("unavailable", "rik-network is shutting down; retry against the restarted service");
    const instanceId = validateInstanceId(request.instanceId);
    if (request.action === "destroy") return this.locks.run(instanceId, () => this.destroy(instanceId));
    const definition = parseWorkloadDefinition(request.definition);
    const strategy = this.registry.resolve(definition.kind);
    const digest = digestOf(definition);
    return this.locks.run(instanceId, async () => {
      const existing = this.records.get(instanceId);
      if (existing !== undefined) {
        if (existing.digest === digest) return existing.network;
        throw new NetworkError(
          "failed-precondition",
          `instance "${instanceId}" already exists with a different definition; DESTROY it first, then CREATE it again`,
        );
      }
      strategy.admit(instanceId, definition);
      this.announce({ instanceId, kind: definition.kind, status: "creating" });
      let network: InstanceNetwork;
      try {
        network = await strategy.create(instanceId, definition);
      } catch (error) {
        this.announce({ instanceId, kind: definition.kind, status: "failed" });
        throw error;
      }
      this.records.set(instanceId, { network, digest });
      this.announce(network);
      return network;
    });
  }

  private async destroy(instanceId: string): Promise<InstanceNetwork> {
    const record = this.records.get(instanceId);
    if (record === undefined) return { instanceId, kind: "", status: "terminated" };
    const { network } = record;
    record.network = { ...network, status: "destroying" };
    this.announce(record.network);
    try {
      await this.registry.resolve(network.kind).destroy(network);
    } catch (error) {
      record.network = { ...network, status: "failed" };
      this.announce(record.network);
      throw error;
    }
    this.records.delete(instanceId);
    const terminated: InstanceNetwork = { ...network, status: "terminated" };
    this.announce(terminated);
    return terminated;
  }

  get(instanceId: string): InstanceNetwork {
    const record = this.records.get(instanceId);
    if (record === undefined) {
      throw new NetworkError("not-found", `no instance "${instanceId}" on this node; List shows the instances it has`);
    }
    return record.network;
  }

  list(): InstanceNetwork[] {
    return [...this.records.values()].map((record) => record.network);
  }

  subscribe(listener: (network: InstanceNetwork) => void): () => void {
    this.events.on("change", listener);
    return () => this.events.off("change", listener);
  }

  /** Refuses new operations and waits for those in flight. Leaves every network in place. */
  async close(): Promise<void> {
    this.closed = true;
    await this.locks.idle();
  }

  private announce(network: InstanceNetwork): void {
    this.logger.debug("instance changed", { instance_id: network.instanceId, status: network.status });
    this.events.emit("change", network);
  }
}
