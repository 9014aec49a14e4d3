import type { NetworkKind } from "../model/instance-network.js";
import { NetworkError } from "../model/network-error.js";
import type { WorkloadStrategy } from "../strategies/workload-strategy.js";

/** A kind we know of but cannot network yet: the reason is returned as UNIMPLEMENTED. */
export interface Unimplemented {
  readonly unimplemented: string;
}

/**
 * A strategy for every kind that has a network of its own (a member of the InstanceNetwork
 * union), so that a kind added there without its registry line does not compile; and any
 * other known kind, implemented or not yet.
 */
export type StrategyEntries = { readonly [K in NetworkKind]: WorkloadStrategy } & Readonly<Record<string, WorkloadStrategy | Unimplemented>>;

/** Maps each workload kind to its strategy; the single place where kinds are registered. */
export class StrategyRegistry {
  private readonly registered: ReadonlyMap<string, WorkloadStrategy | Unimplemented>;

  constructor(entries: StrategyEntries) {
    this.registered = new Map(Object.entries(entries));
  }

  get kinds(): string[] {
    return [...this.registered.keys()];
  }

  /** The implemented strategies, by kind. */
  get entries(): [string, WorkloadStrategy][] {
    return [...this.registered].flatMap(([kind, entry]) => ("unimplemented" in entry ? [] : [[kind, entry] as [string, WorkloadStrategy]]));
  }

  resolve(kind: string): WorkloadStrategy {
    const entry = this.registered.get(kind);
    if (entry === undefined) {
      throw new NetworkError(
        "invalid-argument",
        `invalid workload definition: kind "${kind}" is not supported; accepted kinds: ${this.kinds.join(", ")}`,
      );
    }
    if ("unimplemented" in entry) throw new NetworkError("unimplemented", entry.unimplemented);
    return entry;
  }
}
