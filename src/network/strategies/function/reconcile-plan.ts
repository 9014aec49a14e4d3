import { isTapName } from "../../model/instance-naming.js";
import { chainKey, isOurChainName, ruleKey, type Chain, type Rule, type RuleBatch, type SavedRules } from "../../firewall/iptables/iptables-rules.js";
import type { AddressInfo, LinkInfo } from "../../kernel/rtnetlink/rtnetlink.js";

/** A TAP as an instance needs it. */
export interface DesiredTap {
  readonly tapName: string;
  readonly hostIp: string;
  readonly prefixLength: number;
  readonly mtu: number;
}

export interface DesiredState {
  readonly taps: readonly DesiredTap[];
  readonly chains: readonly Chain[];
  /** Jumps into our chains: inserted at the top when missing. */
  readonly jumps: readonly Rule[];
  /**
   * The whole content of the node-wide chains, in order. A chain that holds anything else,
   * or the same rules in another order, is flushed and rewritten in the same batch.
   */
  readonly fixed: readonly Rule[];
  /** Every other rule we own, where order does not matter: appended when missing. */
  readonly rules: readonly Rule[];
}

export interface ObservedState {
  readonly links: readonly LinkInfo[];
  readonly addresses: readonly AddressInfo[];
  readonly saved: SavedRules;
}

export interface TapRepair {
  readonly tap: DesiredTap;
  readonly index: number;
  readonly addAddress: boolean;
  readonly setUp: boolean;
}

export interface ReconcilePlan {
  readonly createTaps: readonly DesiredTap[];
  readonly repairTaps: readonly TapRepair[];
  readonly removeAddresses: readonly AddressInfo[];
  readonly deleteTaps: readonly string[];
  readonly rules: Required<RuleBatch>;
}

const ownComment = /--comment "?(rik:[^" ]+|rik-network)"?/;

/** Rules we own: those in our chains, and those our comments tag anywhere else. */
function isOurs(rule: Rule, ourChains: ReadonlySet<string>): boolean {
  return ourChains.has(chainKey({ table: rule.table, name: rule.chain })) || ownComment.test(rule.spec);
}

/**
 * What to do so that the kernel holds exactly the desired state: missing TAPs, addresses
 * and rules are added; TAPs with our naming, addresses on them and rules of ours that no
 * instance owns are removed; duplicates of a desired rule are removed. Pure, so that every
 * decision reconcile takes can be tested without a kernel.
 */
export function planReconcile(desired: DesiredState, observed: ObservedState): ReconcilePlan {
  const linkByName = new Map(observed.links.map((link) => [link.name, link]));
  const wantedTaps = new Map(desired.taps.map((tap) => [tap.tapName, tap]));
  const addressesByIndex = new Map<number, AddressInfo[]>();
  for (const address of observed.addresses) {
    addressesByIndex.set(address.index, [...(addressesByIndex.get(address.index) ?? []), address]);
  }

  const createTaps: DesiredTap[] = [];
  const repairTaps: TapRepair[] = [];
  const removeAddresses: AddressInfo[] = [];
  for (const tap of desired.taps) {
    const link = linkByName.get(tap.tapName);
    if (link === undefined || link.kind !== "tun") {
      createTaps.push(tap);
      continue;
    }
    const addresses = addressesByIndex.get(link.index) ?? [];
    const addAddress = !addresses.some((a) => a.address === tap.hostIp && a.prefixLength === tap.prefixLength);
    const setUp = !link.up || link.mtu !== tap.mtu;
    if (addAddress || setUp) repairTaps.push({ tap, index: link.index, addAddress, setUp });
    removeAddresses.push(...addresses.filter((a) => a.address !== tap.hostIp || a.prefixLength !== tap.prefixLength));
  }
  const deleteTaps = observed.links
    .filter((link) => isTapName(link.name) && link.kind === "tun" && !wantedTaps.has(link.name))
    .map((link) => link.name);

  const ourChains = new Set(desired.chains.map(chainKey));
  const fixedChains = new Map<string, Chain>();
  for (const rule of desired.fixed) fixedChains.set(chainKey({ table: rule.table, name: rule.chain }), { table: rule.table, name: rule.chain });
  const rewrite: Chain[] = [];
  for (const [key, chain] of fixedChains) {
    const inChain = (rule: Rule) => chainKey({ table: rule.table, name: rule.chain }) === key;
    const want = desired.fixed.filter(inChain).map(ruleKey);
    const have = observed.saved.rules.filter(inChain).map(ruleKey);
    if (want.length !== have.length || want.some((rule, index) => rule !== have[index])) rewrite.push(chain);
  }
  const rewritten = new Set(rewrite.map(chainKey));
  // Chains named like ours that are no longer wanted (another pool, an older layout) go whole.
  const staleChains: Chain[] = [...observed.saved.chains]
    .map((key) => {
      const [table, name] = key.split(" ") as [Chain["table"], string];
      return { table, name };
    })
    .filter((chain) => isOurChainName(chain.name) && !ourChains.has(chainKey(chain)));
  const stale = new Set(staleChains.map(chainKey));

  // Keyed once: `missing` below needs the keys again.
  const keyOf = new Map<Rule, string>();
  const wanted = new Map<string, Rule>();
  for (const rule of [...desired.jumps, ...desired.rules]) {
    const key = ruleKey(rule);
    keyOf.set(rule, key);
    wanted.set(key, rule);
  }
  const seen = new Set<string>();
  const deleteRules: Rule[] = [];
  for (const rule of observed.saved.rules) {
    // Node-wide chains are compared whole, and stale chains flushed whole, above.
    const inChain = chainKey({ table: rule.table, name: rule.chain });
    if (fixedChains.has(inChain) || stale.has(inChain)) continue;
    const key = ruleKey(rule);
    if (wanted.has(key) && !seen.has(key)) seen.add(key);
    else if (wanted.has(key) || isOurs(rule, ourChains)) deleteRules.push(rule);
  }
  const missing = (rules: readonly Rule[]) => rules.filter((rule) => !seen.has(keyOf.get(rule)!));

  return {
    createTaps,
    repairTaps,
    removeAddresses,
    deleteTaps,
    rules: {
      createChains: desired.chains.filter((chain) => !observed.saved.chains.has(chainKey(chain))),
      // A chain just created is empty, so only existing ones need the flush.
      flushChains: rewrite.filter((chain) => observed.saved.chains.has(chainKey(chain))),
      delete: deleteRules,
      insert: missing(desired.jumps),
      append: [...desired.fixed.filter((rule) => rewritten.has(chainKey({ table: rule.table, name: rule.chain }))), ...missing(desired.rules)],
      deleteChains: staleChains,
    },
  };
}

/** The plan as counts per action, for the one log line and the metrics of a reconcile. */
export function planActions(plan: ReconcilePlan): Record<string, number> {
  const counts: Record<string, number> = {
    tap_created: plan.createTaps.length,
    tap_repaired: plan.repairTaps.length,
    address_removed: plan.removeAddresses.length,
    tap_removed: plan.deleteTaps.length,
    chain_created: plan.rules.createChains.length,
    chain_rewritten: plan.rules.flushChains.length,
    chain_removed: plan.rules.deleteChains.length,
    rule_removed: plan.rules.delete.length,
    rule_added: plan.rules.insert.length + plan.rules.append.length,
  };
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
}
