import { EventEmitter } from "node:events";
import type { Logger } from "../../logger.js";
import { faultPoint } from "../support/fault-point.js";
import type { ApplyRequest, InstanceNetwork, InstanceStatus } from "../model/instance-network.js";
import { quotedInstanceId, validateInstanceId } from "../model/instance-id.js";
import type { InstanceRecord, InstanceStore } from "./instance-store.js";
import { KeyedLock } from "../concurrency/keyed-lock.js";
import { NetworkError } from "../model/network-error.js";
import type { NetworkObserver } from "../model/network-observer.js";
import { OperationGate } from "../concurrency/operation-gate.js";
import type { StrategyRegistry } from "./strategy-registry.js";
import { rollBack, rollbackFailuresOf, type UndoStep } from "../support/rollback.js";
import { parseWorkloadDefinition } from "../model/workload-definition.js";
import type { WorkloadStrategy } from "../strategies/workload-strategy.js";
import type { Firewall } from "../firewall/firewall.js";
import type { NodeSetup } from "../node/node-setup.js";

export interface NetworkManagerOptions {
  readonly registry: StrategyRegistry;
  /** Node-wide setup every strategy shares, done first at start. */
  readonly node: NodeSetup;
  /** Reconciled with every kind's instances at once. */
  readonly firewall: Firewall;
  readonly store: InstanceStore;
  readonly logger: Logger;
  readonly observer?: NetworkObserver;
  /** Period of the drift-repairing resync; 0 or undefined turns it off. */
  readonly resyncIntervalMs?: number;
}

function withStatus(record: InstanceRecord, status: InstanceRecord["status"], networkStatus: InstanceStatus = status): InstanceRecord {
  return { ...record, status, network: { ...record.network, status: networkStatus } };
}

/**
 * The node's instances and the single entry point for changing them. Validates input
 * before anything is recorded, writes intent to the store before the kernel is touched,
 * serializes operations per instance, reconciles the kernel with the store at start and
 * periodically, and announces every change.
 */
export class NetworkManager {
  private readonly options: NetworkManagerOptions;
  private readonly records = new Map<string, InstanceRecord>();
  private readonly locks = new KeyedLock();
  private readonly gate = new OperationGate();
  private readonly events = new EventEmitter();
  private resyncTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: NetworkManagerOptions) {
    this.options = options;
    this.events.setMaxListeners(0);
  }

  /** Prepares the node, loads the store and makes the kernel match it, before anything is served. */
  async start(): Promise<void> {
    const { registry, store, resyncIntervalMs, node, firewall } = this.options;
    firewall.prefetch();
    await node.setup((name) => registry.entries.some(([, strategy]) => strategy.ownsLink(name)));
    for (const record of store.load()) {
      registry.resolve(record.kind).restore(record.network);
      this.records.set(record.instanceId, record);
    }
    await this.reconcile("start");
    if (resyncIntervalMs !== undefined && resyncIntervalMs > 0) {
      this.resyncTimer = setInterval(() => {
        this.reconcile("resync").catch((error: unknown) =>
          this.options.logger.error("resync failed; retrying at the next interval", { error: (error as Error).message }),
        );
      }, resyncIntervalMs);
      this.resyncTimer.unref();
    }
  }

  async apply(request: ApplyRequest): Promise<InstanceNetwork> {
    if (this.closed) throw new NetworkError("unavailable", "rik-network is shutting down; retry against the restarted service");
    const instanceId = validateInstanceId(request.instanceId);
    if (request.action === "destroy") return this.gate.shared(() => this.locks.run(instanceId, () => this.destroy(instanceId)));
    const definition = parseWorkloadDefinition(request.definition);
    const strategy = this.options.registry.resolve(definition.kind);
    return this.gate.shared(() =>
      this.locks.run(instanceId, async () => {
        const existing = this.records.get(instanceId);
        if (existing !== undefined) {
          if (existing.status !== "running") {
            throw new NetworkError(
              "failed-precondition",
              `instance "${instanceId}" is left from an operation whose teardown failed; DESTROY it again, then CREATE it`,
            );
          }
          // The same instance if it gets the same network: whatever else changed (rootfs, replicas...) is the VMM's.
          const difference = existing.kind === definition.kind ? strategy.differenceFrom(existing.network, definition) : `kind ${existing.kind}`;
          if (difference === undefined) return existing.network;
          throw new NetworkError(
            "failed-precondition",
            `instance "${instanceId}" already exists with ${difference}, and its network cannot change; DESTROY it first, then CREATE it again`,
          );
        }
        await strategy.admit(instanceId, definition);
        const network = strategy.prepare(instanceId, definition);
        const intent: InstanceRecord = { instanceId, kind: definition.kind, status: "creating", network };
        try {
          await this.options.store.put(intent, "crash-safe");
        } catch (error) {
          strategy.release(network);
          throw error;
        }
        this.records.set(instanceId, intent);
        this.announce(network);
        faultPoint("create: intent recorded");
        const running = withStatus(intent, "running");
        // The acknowledgement needs both the kernel done and the record durable, and neither
        // needs the other, so the fsyncs overlap the kernel work. The "running" line is
        // written (write(2), synchronously) before the first kernel call; only its fdatasync
        // runs in another thread while this one makes the kernel calls, most of which the
        // kernel does inside sendmsg(2), on this thread. So a kill before this point leaves a
        // "creating" record, which the restart undoes, and a kill from here on a "running"
        // one, whose missing pieces the restart re-creates: the CREATE is completed.
        const recording = this.options.store.put(running);
        const [recorded, realized] = await Promise.allSettled([recording, strategy.realize(network)]);
        if (realized.status === "rejected") return this.undoCreate(strategy, intent, realized.reason, { tornDown: true });
        if (recorded.status === "rejected") return this.undoCreate(strategy, intent, recorded.reason, { tornDown: false });
        this.records.set(instanceId, running);
        faultPoint("create: acknowledged");
        this.announce(running.network);
        return running.network;
      }),
    );
  }

  /**
   * Undoes a CREATE that failed after its intent was recorded, and throws `original`. A
   * realize that failed has undone its own kernel work (`tornDown`); otherwise the network
   * is torn down here. When some of the kernel work could not be undone, the instance is
   * kept, with its allocation, as a failed "destroying" one until a DESTROY or the next
   * reconcile (the resync, or the next start) removes what is left; otherwise it is forgotten.
   */
  private async undoCreate(strategy: WorkloadStrategy, intent: InstanceRecord, original: unknown, { tornDown }: { tornDown: boolean }): Promise<never> {
    let kernelLeft = rollbackFailuresOf(original).length > 0;
    const steps: UndoStep[] = [];
    if (!tornDown) {
      steps.push({
        name: "tear the network down",
        run: () =>
          strategy.teardown(intent.network).catch((error: unknown) => {
            kernelLeft = true;
            throw error;
          }),
      });
    }
    steps.push({
      name: "forget the instance",
      run: async () => {
        try {
          if (kernelLeft) await this.keepForRepair(intent);
          else await this.forget(intent);
        } finally {
          this.announce({ ...intent.network, status: "failed" });
        }
      },
    });
    return rollBack(original, steps, { logger: this.options.logger, instanceId: intent.instanceId });
  }

  /** Keeps an instance whose network could not be wholly removed, as a failed DESTROY does. */
  private async keepForRepair(record: InstanceRecord): Promise<void> {
    const failed = withStatus(record, "destroying", "failed");
    this.records.set(record.instanceId, failed);
    // So that a restart finishes the teardown rather than re-creating a "running" record.
    await this.options.store.put(failed, "crash-safe");
  }

  private async destroy(instanceId: string): Promise<InstanceNetwork> {
    const record = this.records.get(instanceId);
    if (record === undefined) return { instanceId, kind: "", status: "terminated" };
    const strategy = this.options.registry.resolve(record.kind);
    const destroying = withStatus(record, "destroying");
    // A failure here (the state directory full...) leaves the instance as it was, running.
    await this.options.store.put(destroying, "crash-safe");
    this.records.set(instanceId, destroying);
    this.announce(destroying.network);
    faultPoint("destroy: intent recorded");
    try {
      await strategy.teardown(record.network);
    } catch (error) {
      // Kept, with its allocation, until a DESTROY or the next reconcile finishes the job: nothing leaks.
      const failed = withStatus(record, "destroying", "failed");
      this.records.set(instanceId, failed);
      this.announce(failed.network);
      throw error;
    }
    await this.forget(record);
    faultPoint("destroy: record removed");
    const terminated: InstanceNetwork = { ...record.network, status: "terminated" };
    this.announce(terminated);
    return terminated;
  }

  /**
   * Makes the kernel hold exactly the acknowledged instances: operations cut short (records
   * still "creating" or "destroying") are undone or finished, missing pieces re-created,
   * and whatever no instance owns removed. Runs alone: operations wait for it.
   */
  reconcile(trigger: "start" | "resync"): Promise<Record<string, number>> {
    return this.gate.exclusive(async () => {
      const startedAt = performance.now();
      const { registry, logger, observer } = this.options;
      // Before anything else: a restart must not bring back an instance that is gone.
      await this.writePendingRemovals();
      const running = [...this.records.values()].filter((r) => r.status === "running");
      const interrupted = [...this.records.values()].filter((r) => r.status !== "running");
      const actions: Record<string, number> = {};
      const add = (done: Record<string, number>) => {
        for (const [action, count] of Object.entries(done)) actions[action] = (actions[action] ?? 0) + count;
      };
      const start = this.options.node.takeStartDumps();
      for (const [kind, strategy] of registry.entries) {
        add(await strategy.reconcile(running.filter((r) => r.kind === kind).map((r) => r.network), start));
      }
      // The firewall gets every kind's instances at once, so no kind's mappings are another's orphans.
      add(await this.options.firewall.reconcile(running.map((r) => registry.resolve(r.kind).firewallOf(r.network))));
      // What waits for the node to be in shape (e.g. spare TAPs, whose kernel work would slow the reconcile down).
      if (start !== undefined) for (const [, strategy] of registry.entries) strategy.started(start);
      // Their kernel state is gone now (no longer desired), so their records and reservations can go too.
      for (const record of interrupted) {
        const action = record.status === "creating" ? "interrupted_create_undone" : "interrupted_destroy_finished";
        actions[action] = (actions[action] ?? 0) + 1;
        await this.forget(record);
        if (record.status === "destroying") this.announce({ ...record.network, status: "terminated" });
      }
      const repaired = Object.keys(actions).length > 0;
      logger.log(trigger === "start" || repaired ? "info" : "debug", "reconciled", {
        trigger,
        instances: running.length,
        actions,
        duration_ms: Math.round(performance.now() - startedAt),
      });
      observer?.reconciled?.(trigger, actions);
      return actions;
    });
  }

  get(instanceId: string): InstanceNetwork {
    const record = this.records.get(instanceId);
    if (record === undefined) {
      // The id is the caller's, unvalidated: a hostile one must not reach the message (and the log) raw.
      throw new NetworkError("not-found", `no instance ${quotedInstanceId(instanceId)} on this node; List shows the instances it has`);
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
    clearInterval(this.resyncTimer);
    await this.gate.exclusive(() => this.writePendingRemovals());
  }

  /**
   * Drops an instance whose kernel state is gone. Writing its removal to the journal may fail
   * (the state directory full...): the kernel is clean and the instance is gone either way,
   * so that is logged, not thrown, and the store keeps the removal pending, to write it
   * before its next line, at the next resync or at close, once the disk has room. Until
   * then the journal's last line of the instance is what a restart acts on: "destroying" is
   * finished and "creating" undone, but "running" (a CREATE whose realize, or the fdatasync
   * of its running line, failed after that line was written) is re-created.
   */
  private async forget(record: InstanceRecord): Promise<void> {
    this.options.registry.resolve(record.kind).release(record.network);
    this.records.delete(record.instanceId);
    try {
      await this.options.store.remove(record.instanceId);
    } catch (error) {
      this.options.logger.warn(
        "the instance is gone, but the state directory cannot take its removal yet; it is written with the next journal line, at the next resync or at stop",
        { instance_id: record.instanceId, error: (error as Error).message },
      );
    }
  }

  /** The removals `forget` could not write, written as soon as the disk has room again. */
  private async writePendingRemovals(): Promise<void> {
    try {
      await this.options.store.writePending();
    } catch (error) {
      this.options.logger.warn("the state directory still cannot take the removal of instances that are gone; retrying at the next resync", {
        error: (error as Error).message,
      });
    }
  }

  private announce(network: InstanceNetwork): void {
    // Checked first: winston formats (timestamps included) even the lines its level then drops.
    if (this.options.logger.isLevelEnabled("debug")) {
      this.options.logger.debug("instance changed", { instance_id: network.instanceId, status: network.status });
    }
    this.events.emit("change", network);
  }
}
