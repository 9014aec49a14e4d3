import { mergeRanges, type ListedChain, type ListedTable } from "./nft-listing.js";
import {
  cidrRange,
  renderChain,
  renderMap,
  renderRules,
  renderSet,
  ruleComment,
  TABLE_REF,
  type MapElement,
  type NftChain,
  type NodeTable,
} from "./nft-rules.js";

/** Elements per transaction, so that a cold start or a large repair never holds the nf_tables lock for long. */
export const ELEMENTS_PER_TRANSACTION = 1000;

export interface TablePlan {
  /** One transaction that puts the table's node-wide part right; "" when nothing is wrong with it. */
  readonly setup: string;
  /** Elements to remove (by key), then to add: the caller sends them in chunks after `setup`. */
  readonly removeElements: readonly { readonly map: string; readonly key: string }[];
  readonly addElements: readonly MapElement[];
  /** What the plan does, by action, for the reconcile's log line and metrics. */
  readonly actions: Readonly<Record<string, number>>;
}

function sameBase(chain: NftChain, listed: ListedChain): boolean {
  const want = chain.base;
  const have = listed.base;
  if (want === undefined || have === undefined) return want === have;
  return want.type === have.type && want.hook === have.hook && want.priority === have.priority && have.policy === "accept";
}

function sameRules(chain: NftChain, comments: readonly (string | undefined)[]): boolean {
  return chain.rules.length === comments.length && chain.rules.every((rule, at) => comments[at] === ruleComment(chain.name, rule));
}

function sameRanges(cidrs: readonly string[], ranges: readonly (readonly [number, number])[]): boolean {
  const want = mergeRanges(cidrs.map(cidrRange));
  const have = mergeRanges(ranges);
  return want.length === have.length && want.every(([first, last], at) => have[at]![0] === first && have[at]![1] === last);
}

function count(actions: Record<string, number>, action: string, n = 1): void {
  if (n > 0) actions[action] = (actions[action] ?? 0) + n;
}

/**
 * What makes our table hold exactly `node` and the `wanted` elements, given its listing
 * (undefined when the table does not exist). Pure.
 *
 * Chains whose rules differ (compared through the digests in their comments) are flushed and
 * refilled. A chain, set or map that must be deleted (wrong hook, wrong type, or not ours any
 * more) may still be referenced by a rule, so then every chain is flushed and refilled in the
 * same transaction, before the deletions. The interval sets are small and refilled whole; map
 * elements are compared one by one, so a repair costs what is wrong.
 */
export function planTable(node: NodeTable, wanted: readonly MapElement[], listed: ListedTable | undefined): TablePlan {
  const actions: Record<string, number> = {};
  if (listed === undefined) {
    count(actions, "table_created");
    count(actions, "element_added", wanted.length);
    return {
      setup:
        [`add table ${TABLE_REF}`, ...node.sets.flatMap(renderSet), ...node.maps.map(renderMap), ...node.chains.map(renderChain), ...node.chains.flatMap(renderRules)].join("\n") +
        "\n",
      removeElements: [],
      addElements: wanted,
      actions,
    };
  }

  const wantedChains = new Set(node.chains.map((chain) => chain.name));
  const deleteObjects: string[] = [];
  for (const chain of node.chains) {
    const have = listed.chains.get(chain.name);
    if (have !== undefined && !sameBase(chain, have)) deleteObjects.push(`delete chain ${TABLE_REF} ${chain.name}`);
  }
  for (const name of listed.chains.keys()) if (!wantedChains.has(name)) deleteObjects.push(`delete chain ${TABLE_REF} ${name}`);
  const recreatedSets = new Set<string>();
  for (const set of node.sets) {
    const have = listed.sets.get(set.name);
    if (have !== undefined && (have.type !== "ipv4_addr" || have.flags.join(",") !== "interval")) {
      deleteObjects.push(`delete set ${TABLE_REF} ${set.name}`);
      recreatedSets.add(set.name);
    }
  }
  const recreatedMaps = new Set<string>();
  for (const map of node.maps) {
    const have = listed.maps.get(map.name);
    if (have !== undefined && (have.type.join(" . ") !== map.type.join(" . ") || have.data !== map.data)) {
      deleteObjects.push(`delete map ${TABLE_REF} ${map.name}`);
      recreatedMaps.add(map.name);
    }
  }
  // Sets and maps share one namespace: a wanted set listed as a map (or the other way round) is deleted as stale.
  const wantedSets = new Set(node.sets.map((set) => set.name));
  const wantedMaps = new Set(node.maps.map((map) => map.name));
  for (const name of listed.sets.keys()) if (!wantedSets.has(name)) deleteObjects.push(`delete set ${TABLE_REF} ${name}`);
  for (const name of listed.maps.keys()) if (!wantedMaps.has(name)) deleteObjects.push(`delete map ${TABLE_REF} ${name}`);

  const lines: string[] = [];
  const rewriteAll = deleteObjects.length > 0;
  // Flushes first: nothing may reference what is deleted next.
  const flushed = new Set<string>();
  for (const [name] of listed.chains) {
    const chain = node.chains.find((wantedChain) => wantedChain.name === name);
    if (rewriteAll || (chain !== undefined && !sameRules(chain, listed.chains.get(name)!.comments))) {
      lines.push(`flush chain ${TABLE_REF} ${name}`);
      flushed.add(name);
    }
  }
  lines.push(...deleteObjects);
  count(actions, "object_removed", deleteObjects.length);

  for (const set of node.sets) {
    const have = listed.sets.get(set.name);
    if (have === undefined || recreatedSets.has(set.name)) {
      lines.push(...renderSet(set));
      count(actions, "set_created");
    } else if (!sameRanges(set.elements, have.ranges)) {
      lines.push(`flush set ${TABLE_REF} ${set.name}`);
      if (set.elements.length > 0) lines.push(`add element ${TABLE_REF} ${set.name} { ${set.elements.join(", ")} }`);
      count(actions, "set_refilled");
    }
  }
  for (const map of node.maps) {
    if (!listed.maps.has(map.name) || recreatedMaps.has(map.name)) {
      lines.push(renderMap(map));
      count(actions, "map_created");
    }
  }
  const refill: NftChain[] = [];
  for (const chain of node.chains) {
    const have = listed.chains.get(chain.name);
    if (have === undefined || !sameBase(chain, have)) {
      lines.push(renderChain(chain));
      refill.push(chain);
      count(actions, "chain_created");
    } else if (flushed.has(chain.name)) {
      refill.push(chain);
      count(actions, "chain_rewritten");
    }
  }
  lines.push(...refill.flatMap(renderRules));

  const removeElements: { map: string; key: string }[] = [];
  const addElements: MapElement[] = [];
  const wantedKeys = new Set<string>();
  for (const element of wanted) {
    wantedKeys.add(`${element.map} ${element.key}`);
    const have = recreatedMaps.has(element.map) ? undefined : listed.maps.get(element.map)?.elements.get(element.key);
    if (have === element.value) continue;
    if (have !== undefined) removeElements.push({ map: element.map, key: element.key });
    addElements.push(element);
  }
  for (const map of node.maps) {
    if (recreatedMaps.has(map.name)) continue;
    for (const key of listed.maps.get(map.name)?.elements.keys() ?? []) {
      if (!wantedKeys.has(`${map.name} ${key}`)) removeElements.push({ map: map.name, key });
    }
  }
  count(actions, "element_removed", removeElements.length);
  count(actions, "element_added", addElements.length);
  return { setup: lines.length === 0 ? "" : `${lines.join("\n")}\n`, removeElements, addElements, actions };
}

/** `items` in slices of at most `size`. */
export function chunks<T>(items: readonly T[], size = ELEMENTS_PER_TRANSACTION): T[][] {
  const slices: T[][] = [];
  for (let at = 0; at < items.length; at += size) slices.push(items.slice(at, at + size));
  return slices;
}

/** The one transaction that removes everything the nft backend ever made: used when the node moves to another backend. */
export function renderDeleteTable(): string {
  return `delete table ${TABLE_REF}\n`;
}
