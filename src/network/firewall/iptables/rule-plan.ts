import { chainKey, isOurChainName, ruleKey, type Chain, type Rule, type RuleBatch, type SavedRules } from "./iptables-rules.js";

/** The rules the firewall wants, by how reconcile treats them. */
export interface DesiredRules {
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

const ownComment = /--comment "?(rik:[^" ]+|rik-network)"?/;

/** Rules we own: those in our chains, and those our comments tag anywhere else. */
function isOurs(rule: Rule, ourChains: ReadonlySet<string>): boolean {
  return ourChains.has(chainKey({ table: rule.table, name: rule.chain })) || ownComment.test(rule.spec);
}

/**
 * The batch that makes iptables hold exactly the desired rules, given what iptables-save
 * shows: missing chains and rules are added, node-wide chains whose content differs rewritten
 * whole, and rules of ours that are not wanted (or are duplicates of a wanted one) removed,
 * as are chains named like ours that are no longer wanted. Pure.
 */
export function planRules(desired: DesiredRules, saved: SavedRules): Required<RuleBatch> {
  const ourChains = new Set(desired.chains.map(chainKey));
  const fixedChains = new Map<string, Chain>();
  for (const rule of desired.fixed) fixedChains.set(chainKey({ table: rule.table, name: rule.chain }), { table: rule.table, name: rule.chain });
  const rewrite: Chain[] = [];
  for (const [key, chain] of fixedChains) {
    const inChain = (rule: Rule) => chainKey({ table: rule.table, name: rule.chain }) === key;
    const want = desired.fixed.filter(inChain).map(ruleKey);
    const have = saved.rules.filter(inChain).map(ruleKey);
    if (want.length !== have.length || want.some((rule, index) => rule !== have[index])) rewrite.push(chain);
  }
  const rewritten = new Set(rewrite.map(chainKey));
  // Chains named like ours that are no longer wanted (another pool, an older layout) go whole.
  const staleChains: Chain[] = [...saved.chains]
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
  for (const rule of saved.rules) {
    // Node-wide chains are compared whole, and stale chains flushed whole, above.
    const inChain = chainKey({ table: rule.table, name: rule.chain });
    if (fixedChains.has(inChain) || stale.has(inChain)) continue;
    const key = ruleKey(rule);
    if (wanted.has(key) && !seen.has(key)) seen.add(key);
    else if (wanted.has(key) || isOurs(rule, ourChains)) deleteRules.push(rule);
  }
  const missing = (rules: readonly Rule[]) => rules.filter((rule) => !seen.has(keyOf.get(rule)!));

  return {
    createChains: desired.chains.filter((chain) => !saved.chains.has(chainKey(chain))),
    // A chain just created is empty, so only existing ones need the flush.
    flushChains: rewrite.filter((chain) => saved.chains.has(chainKey(chain))),
    delete: deleteRules,
    insert: missing(desired.jumps),
    append: [...desired.fixed.filter((rule) => rewritten.has(chainKey({ table: rule.table, name: rule.chain }))), ...missing(desired.rules)],
    deleteChains: staleChains,
  };
}

/** The batch as counts per action, for the one log line and the metrics of a reconcile. */
export function ruleActions(rules: Required<RuleBatch>): Record<string, number> {
  const counts: Record<string, number> = {
    chain_created: rules.createChains.length,
    chain_rewritten: rules.flushChains.length,
    chain_removed: rules.deleteChains.length,
    rule_removed: rules.delete.length,
    rule_added: rules.insert.length + rules.append.length,
  };
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
}
