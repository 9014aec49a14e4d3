/**
 * iptables rules as data, rendered to iptables-restore text by pure functions.
 * Rule specs are written in iptables-save's canonical form, so that a rule read back
 * from `iptables-save` compares equal to the one we rendered.
 */
import type { PortMapping } from "./instance-network.js";
import { TAP_PREFIX } from "./instance-naming.js";
import { formatIpv4, Ipv4Cidr, parseIpv4 } from "./ipv4-cidr.js";

export type Table = "raw" | "nat" | "filter";

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

/**
 * One iptables-restore batch, applied in this order: chains to create, chains to flush,
 * rules to delete, rules to insert at the top, rules to append, chains to delete.
 */
export interface RuleBatch {
  readonly createChains?: readonly Chain[];
  readonly flushChains?: readonly Chain[];
  readonly delete?: readonly Rule[];
  readonly insert?: readonly Rule[];
  readonly append?: readonly Rule[];
  /** Chains to remove last, once nothing jumps to them: flushed, then deleted. */
  readonly deleteChains?: readonly Chain[];
}

/**
 * nat: reached from PREROUTING and OUTPUT for local destinations; jumps by host port range to
 * the PORT_SHARDS chains holding the DNATs.
 */
export const NAT_CHAIN = "RIKLET";
/** nat: MASQUERADE for guest egress, hairpin and loopback sources; reached from POSTROUTING. */
export const POSTROUTING_CHAIN = "RIKLET-POSTROUTING";
/** filter: what may be forwarded to and from guests, ending in REJECTs; reached from FORWARD. */
export const FORWARD_CHAIN = "RIKLET-FORWARD";
/**
 * filter: reached from FORWARD_CHAIN, before its REJECTs; jumps by guest address block to the
 * chains holding the instances' ACCEPTs.
 */
export const INSTANCES_CHAIN = "RIKLET-INSTANCES";
/** filter: what guests may open to the node itself (nothing but ICMP); reached from INPUT for guest TAPs. */
export const INPUT_CHAIN = "RIKLET-INPUT";
/** Comment on node-wide rules; instance rules carry `rik:<instance id>`. */
export const NODE_COMMENT = "rik-network";
/** Every guest TAP, as an iptables interface wildcard. */
export const GUEST_TAPS = `${TAP_PREFIX}+`;
const LOOPBACK = "127.0.0.0/8";

export function instanceComment(instanceId: string): string {
  return `rik:${instanceId}`;
}

function comment(text: string): string {
  return `-m comment --comment "${text}"`;
}

const node = comment(NODE_COMMENT);

/** What the node-wide rules depend on. */
export interface NodeRuleOptions {
  /** The address pool, as a CIDR. */
  readonly pool: string;
  /** Whether 127.0.0.1:<port> on the node reaches the guests. */
  readonly localhost: boolean;
}

/*
 * Why shards: deleting a rule by its spec makes iptables-nft read the whole chain it is in, so a
 * delete from one chain of 15000 rules costs ~190 ms where one from a chain of ~60 costs ~14 ms,
 * and appends slow down the same way. Instance rules therefore live in many small chains that
 * exist from setup on, so that no operation ever has to create or look up one.
 */

/** Host ports per DNAT shard: 128 shards cover 0-65535, each holding at most 512 ports per protocol. */
const PORT_SHARD_BITS = 9;
export const PORT_SHARDS = 65536 >> PORT_SHARD_BITS;

/** The nat chain holding the DNAT of `hostPort`, e.g. RIKLET-P15 for 7680-8191. */
export function portShardChain(hostPort: number): string {
  return `${NAT_CHAIN}-P${hostPort >> PORT_SHARD_BITS}`;
}

/** /24 blocks (64 instances), or larger ones for pools above a /16, so that there are at most 256. */
function guestShardPrefixLength(poolPrefixLength: number): number {
  return Math.min(Math.max(24, poolPrefixLength), poolPrefixLength + 8);
}

/** The guest address blocks of a pool, one filter chain each. */
export function guestShards(pool: string): { readonly block: string; readonly chain: string }[] {
  const cidr = Ipv4Cidr.parse(pool);
  const prefixLength = guestShardPrefixLength(cidr.prefixLength);
  const size = 2 ** (32 - prefixLength);
  return Array.from({ length: 2 ** (prefixLength - cidr.prefixLength) }, (_, k) => ({
    block: `${formatIpv4(cidr.network + k * size)}/${prefixLength}`,
    chain: `${INSTANCES_CHAIN}-G${k}`,
  }));
}

/** The filter chain holding the ACCEPTs of a guest. Arithmetic only: reconcile calls it per instance. */
export function guestShardChain(pool: string, guestIp: string): string {
  const cidr = Ipv4Cidr.parse(pool);
  const size = 2 ** (32 - guestShardPrefixLength(cidr.prefixLength));
  return `${INSTANCES_CHAIN}-G${Math.floor(((parseIpv4(guestIp) ?? cidr.network) - cidr.network) / size)}`;
}

/** Every chain we own: the node-wide ones and the shards. */
export function nodeChains({ pool }: Pick<NodeRuleOptions, "pool">): Chain[] {
  return [
    { table: "nat", name: NAT_CHAIN },
    ...Array.from({ length: PORT_SHARDS }, (_, k): Chain => ({ table: "nat", name: portShardChain(k << PORT_SHARD_BITS) })),
    { table: "nat", name: POSTROUTING_CHAIN },
    { table: "filter", name: FORWARD_CHAIN },
    { table: "filter", name: INSTANCES_CHAIN },
    ...guestShards(pool).map(({ chain }): Chain => ({ table: "filter", name: chain })),
    { table: "filter", name: INPUT_CHAIN },
  ];
}

/** Whether a chain is named like ours: reconcile removes those it no longer wants. */
export function isOurChainName(name: string): boolean {
  return name === NAT_CHAIN || name.startsWith(`${NAT_CHAIN}-`);
}

/**
 * Jumps into our chains, one per built-in chain, inserted at the top so that other tools'
 * rules cannot shadow them; plus the drop of loopback destinations arriving from outside,
 * which must see packets before the nat PREROUTING DNAT rewrites their destination.
 */
export function nodeJumpRules({ localhost }: NodeRuleOptions): Rule[] {
  const local = `-m addrtype --dst-type LOCAL ${node} -j ${NAT_CHAIN}`;
  return [
    { table: "raw", chain: "PREROUTING", spec: `-d ${LOOPBACK} ! -i lo ${node} -j DROP` },
    { table: "nat", chain: "PREROUTING", spec: local },
    // Without localhost, 127.0.0.1 must not be DNATed: with no route_localnet the packet would be dropped as a martian.
    { table: "nat", chain: "OUTPUT", spec: localhost ? local : `! -d ${LOOPBACK} ${local}` },
    { table: "nat", chain: "POSTROUTING", spec: `${node} -j ${POSTROUTING_CHAIN}` },
    { table: "filter", chain: "FORWARD", spec: `${node} -j ${FORWARD_CHAIN}` },
    { table: "filter", chain: "INPUT", spec: `-i ${GUEST_TAPS} ${node} -j ${INPUT_CHAIN}` },
  ];
}

/**
 * The whole content of the node-wide chains, in order: reconcile rewrites a chain whose
 * content differs, since a rule appended after the REJECTs would never match.
 */
export function nodeChainRules({ pool, localhost }: NodeRuleOptions): Rule[] {
  const nat = (spec: string): Rule => ({ table: "nat", chain: POSTROUTING_CHAIN, spec });
  const forward = (spec: string): Rule => ({ table: "filter", chain: FORWARD_CHAIN, spec });
  const input = (spec: string): Rule => ({ table: "filter", chain: INPUT_CHAIN, spec });
  const portJumps = (["tcp", "udp"] as const).flatMap((protocol) =>
    Array.from({ length: PORT_SHARDS }, (_, k): Rule => {
      const first = k << PORT_SHARD_BITS;
      const range = `${first}:${first + (1 << PORT_SHARD_BITS) - 1}`;
      return { table: "nat", chain: NAT_CHAIN, spec: `-p ${protocol} -m ${protocol} --dport ${range} ${node} -j ${portShardChain(first)}` };
    }),
  );
  const guestJumps = guestShards(pool).flatMap(({ block, chain }): Rule[] => [
    { table: "filter", chain: INSTANCES_CHAIN, spec: `-d ${block} ${node} -j ${chain}` },
    { table: "filter", chain: INSTANCES_CHAIN, spec: `-s ${block} ${node} -j ${chain}` },
  ]);
  return [
    ...portJumps,
    nat(`-s ${pool} ! -d ${pool} ${node} -j MASQUERADE`),
    // Hairpin: a guest calling an exposed port through a node address must get the reply from that address.
    nat(`-s ${pool} -d ${pool} -m conntrack --ctstate DNAT ${node} -j MASQUERADE`),
    // A loopback source cannot leave the node: the guest would answer 127.0.0.1, itself.
    ...(localhost ? [nat(`-s ${LOOPBACK} -d ${pool} ${node} -j MASQUERADE`)] : []),
    forward(`-d ${pool} -m conntrack --ctstate RELATED,ESTABLISHED ${node} -j ACCEPT`),
    forward(`${node} -j ${INSTANCES_CHAIN}`),
    // Everything else to or from a guest is refused at once rather than left to time out.
    forward(`-d ${pool} -p tcp ${node} -j REJECT --reject-with tcp-reset`),
    forward(`-d ${pool} ${node} -j REJECT --reject-with icmp-port-unreachable`),
    forward(`-i ${GUEST_TAPS} -p tcp ${node} -j REJECT --reject-with tcp-reset`),
    forward(`-i ${GUEST_TAPS} ${node} -j REJECT --reject-with icmp-port-unreachable`),
    input(`-m conntrack --ctstate RELATED,ESTABLISHED ${node} -j RETURN`),
    input(`-p icmp ${node} -j RETURN`),
    input(`-p tcp ${node} -j REJECT --reject-with tcp-reset`),
    input(`${node} -j REJECT --reject-with icmp-port-unreachable`),
    ...guestJumps,
  ];
}

export interface InstanceRuleInput {
  readonly instanceId: string;
  readonly tapName: string;
  readonly guestIp: string;
  readonly ports: readonly PortMapping[];
  /** The address pool, as a CIDR: a guest's egress never goes to another guest directly. */
  readonly pool: string;
}

/**
 * Every rule one instance owns: a DNAT per exposed port; an ACCEPT per guest port, for
 * DNATed connections only, so nothing reaches the guest's address directly; and the
 * guest's egress out of the pool, from its own address on its own TAP.
 */
export function instanceRules({ instanceId, tapName, guestIp, ports, pool }: InstanceRuleInput): Rule[] {
  const tag = comment(instanceComment(instanceId));
  const guestChain = guestShardChain(pool, guestIp);
  const rules: Rule[] = [];
  for (const { protocol, hostPort, guestPort, hostIp } of ports) {
    const destination = hostIp === undefined ? "" : `-d ${hostIp}/32 `;
    rules.push({
      table: "nat",
      chain: portShardChain(hostPort),
      spec: `${destination}-p ${protocol} -m ${protocol} --dport ${hostPort} ${tag} -j DNAT --to-destination ${guestIp}:${guestPort}`,
    });
  }
  const guestPorts = new Set<string>();
  for (const { protocol, guestPort } of ports) {
    const spec = `-d ${guestIp}/32 -o ${tapName} -p ${protocol} -m ${protocol} --dport ${guestPort} -m conntrack --ctstate DNAT ${tag} -j ACCEPT`;
    if (guestPorts.has(spec)) continue;
    guestPorts.add(spec);
    rules.push({ table: "filter", chain: guestChain, spec });
  }
  rules.push({ table: "filter", chain: guestChain, spec: `-s ${guestIp}/32 ! -d ${pool} -i ${tapName} ${tag} -j ACCEPT` });
  return rules;
}

const tables: readonly Table[] = ["raw", "nat", "filter"];

/**
 * Renders one batch for `iptables-restore --noflush`. Tables without changes are left out,
 * so a batch touches only what it must. Returns "" for an empty batch.
 */
export function renderRestore(batch: RuleBatch): string {
  let text = "";
  for (const table of tables) {
    const lines: string[] = [];
    for (const chain of batch.createChains ?? []) if (chain.table === table) lines.push(`:${chain.name} - [0:0]`);
    for (const chain of batch.flushChains ?? []) if (chain.table === table) lines.push(`-F ${chain.name}`);
    for (const rule of batch.delete ?? []) if (rule.table === table) lines.push(`-D ${rule.chain} ${rule.spec}`);
    for (const rule of batch.insert ?? []) if (rule.table === table) lines.push(`-I ${rule.chain} 1 ${rule.spec}`);
    for (const rule of batch.append ?? []) if (rule.table === table) lines.push(`-A ${rule.chain} ${rule.spec}`);
    const stale = (batch.deleteChains ?? []).filter((chain) => chain.table === table);
    for (const chain of stale) lines.push(`-F ${chain.name}`);
    for (const chain of stale) lines.push(`-X ${chain.name}`);
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
      table = name === "raw" || name === "nat" || name === "filter" ? name : undefined;
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
