/**
 * Hooks through which the network plane reports what it does to the kernel, so that
 * metrics can be kept outside `src/network`. Every hook is optional and must not throw.
 */
export interface NetworkObserver {
  /** After each iptables-restore: how long it took and whether the kernel accepted it. */
  iptablesRestore?(durationSeconds: number, ok: boolean): void;
  /** After each nftables transaction of the nft backend: how long it took and whether the kernel accepted it. */
  nftTransaction?(durationSeconds: number, ok: boolean): void;
  /**
   * After each reconcile (at start and on every resync): what had to be done, by action,
   * e.g. { tap_created: 1, rule_removed: 3 }. `trigger` is "start" or "resync".
   */
  reconciled?(trigger: "start" | "resync", actions: Readonly<Record<string, number>>): void;
}
