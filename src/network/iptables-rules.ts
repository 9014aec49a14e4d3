/**
 * iptables rules as data, rendered to iptables-restore text by pure functions.
 * Rule specs are written in iptables-save's canonical form, so that a rule read back
 * from `iptables-save` compares equal to the one we rendered.
 */
import type { PortMapping } from "./instance-network.js";

export type Table = "nat" | "filter";

export interface Rule {
  readonly table: Table;
  readonly chain: string;
  /** Everything after `-A <chain> `, in iptables-save's canonical order. */
  readonly spec: string;
}

export interface Chain {
  readonly table: Table;
  readonly name: string;
}

/** One iptables-restore batch: chains to create, then rules to delete, insert at the top, and append. */
export interface RuleBatch {
  readonly createChains?: readonly Chain[];
  readonly delete?: readonly Rule[];
  readonly insert?: readonly Rule[];
  readonly append?: readonly Rule[];
}

/** nat chain holding one DNAT per exposed port; reached from PREROUTING and OUTPUT for local destinations. */
export const NAT_CHAIN = "RIKLET";
/** filter chain holding the FORWARD rules of every instance; reached from FORWARD. */
export const FORWARD_CHAIN = "RIKLET-FORWARD";
/** Comment on node-wide rules; instance rules carry `rik:<instance id>`. */
export const NODE_COMMENT = "rik-network";

export function instanceComment(instanceId: string): string {
  return `rik:${instanceId}`;
}

function comment(text: string): string {
  return `-m comment --comment "${text}"`;
}

export const nodeChains: readonly Chain[] = [
  { table: "nat", name: NAT_CHAIN },
  { table: "filter", name: FORWARD_CHAIN },
];

/** Jumps into our chains. Inserted at the top so that other tools' rules cannot shadow them. */
export function nodeJumpRules(): Rule[] {
  const local = `-m addrtype --dst-type LOCAL ${comment(NODE_COMMENT)} -j ${NAT_CHAIN}`;
  return [
    { table: "nat", chain: "PREROUTING", spec: local },
    { table: "nat", chain: "OUTPUT", spec: local },
    { table: "filter", chain: "FORWARD", spec: `${comment(NODE_COMMENT)} -j ${FORWARD_CHAIN}` },
  ];
}

/** Node-wide rules for the pool: replies back to guests, and MASQUERADE for guest egress only. */
export function nodePoolRules(pool: string): Rule[] {
  return [
    {
      table: "filter",
      chain: FORWARD_CHAIN,
      spec: `-d ${pool} -m conntrack --ctstate RELATED,ESTABLISHED ${comment(NODE_COMMENT)} -j ACCEPT`,
    },
    { table: "nat", chain: "POSTROUTING", spec: `-s ${pool} ! -d ${pool} ${comment(NODE_COMMENT)} -j MASQUERADE` },
  ];
}

export interface InstanceRuleInput {
  readonly instanceId: string;
  readonly tapName: string;
  readonly guestIp: string;
  readonly ports: readonly PortMapping[];
}

/** Every rule one instance owns: DNAT per port, FORWARD to each exposed guest port, and the guest's egress. */
export function instanceRules({ instanceId, tapName, guestIp, ports }: InstanceRuleInput): Rule[] {
  const tag = comment(instanceComment(instanceId));
  const rules: Rule[] = [];
  for (const { protocol, hostPort, guestPort } of ports) {
    rules.push({
      table: "nat",
      chain: NAT_CHAIN,
      spec: `-p ${protocol} -m ${protocol} --dport ${hostPort} ${tag} -j DNAT --to-destination ${guestIp}:${guestPort}`,
    });
    rules.push({
      table: "filter",
      chain: FORWARD_CHAIN,
      spec: `-d ${guestIp}/32 -o ${tapName} -p ${protocol} -m ${protocol} --dport ${guestPort} ${tag} -j ACCEPT`,
    });
  }
  rules.push({ table: "filter", chain: FORWARD_CHAIN, spec: `-s ${guestIp}/32 -i ${tapName} ${tag} -j ACCEPT` });
  return rules;
}

const tables: readonly Table[] = ["nat", "filter"];

/**
 * Renders one batch for `iptables-restore --noflush`. Tables without changes are left out,
 * so a batch touches only what it must. Returns "" for an empty batch.
 */
export function renderRestore(batch: RuleBatch): string {
  let text = "";
  for (const table of tables) {
    const lines: string[] = [];
    for (const chain of batch.createChains ?? []) if (chain.table === table) lines.push(`:${chain.name} - [0:0]`);
    for (const rule of batch.delete ?? []) if (rule.table === table) lines.push(`-D ${rule.chain} ${rule.spec}`);
    for (const rule of batch.insert ?? []) if (rule.table === table) lines.push(`-I ${rule.chain} 1 ${rule.spec}`);
    for (const rule of batch.append ?? []) if (rule.table === table) lines.push(`-A ${rule.chain} ${rule.spec}`);
    if (lines.length > 0) text += `*${table}\n${lines.join("\n")}\nCOMMIT\n`;
  }
  return text;
}

/** What `iptables-save` shows, reduced to what we compare: chains and rules per table. */
export interface SavedRules {
  readonly chains: ReadonlySet<string>;
  readonly rules: readonly Rule[];
}

/** Quotes are optional around simple comments and iptables-save adds them only when needed. */
export function ruleKey(rule: Rule): string {
  return `${rule.table} ${rule.chain} ${rule.spec.replaceAll('"', "").replace(/\s+/g, " ").trim()}`;
}

export function chainKey(chain: Chain): string {
  return `${chain.table} ${chain.name}`;
}

export function parseIptablesSave(text: string): SavedRules {
  const chains = new Set<string>();
  const rules: Rule[] = [];
  let table: Table | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) {
      const name = line.slice(1).trim();
      table = name === "nat" || name === "filter" ? name : undefined;
    } else if (table === undefined) {
      continue;
    } else if (line.startsWith(":")) {
      chains.add(chainKey({ table, name: line.slice(1).split(" ")[0]! }));
    } else if (line.startsWith("-A ")) {
      const [, chain, ...spec] = line.split(" ");
      rules.push({ table, chain: chain!, spec: spec.join(" ") });
    }
  }
  return { chains, rules };
}

/** Rules whose comment tags them as owned by `instanceId`, as read back from iptables-save. */
export function rulesOwnedBy(saved: SavedRules, instanceId: string): Rule[] {
  const tag = instanceComment(instanceId);
  return saved.rules.filter((rule) => {
    const match = /--comment "?([^" ]+)"?/.exec(rule.spec);
    return match?.[1] === tag;
  });
}
