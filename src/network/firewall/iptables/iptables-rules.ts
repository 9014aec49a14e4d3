/**
 * iptables rules as data, rendered to iptables-restore text by pure functions.
 * Rule specs are written in iptables-save's canonical form, so that a rule read back
 * from `iptables-save` compares equal to the one we rendered.
 */
import type { InstanceFirewall, NodeFirewallPolicy } from "../firewall.js";
import { TAP_PREFIX } from "../../model/instance-naming.js";

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
/**
 * filter: what may be forwarded to and from guests, ending in REJECTs; reached from FORWARD.
 * Its rules are node-wide: no instance adds a filter rule (see nodeChainRules for why).
 */
export const FORWARD_CHAIN = "RIKLET-FORWARD";
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

/** Every chain we own: the node-wide ones and the shards. */
export function nodeChains(): Chain[] {
  return [
    { table: "nat", name: NAT_CHAIN },
    ...Array.from({ length: PORT_SHARDS }, (_, k): Chain => ({ table: "nat", name: portShardChain(k << PORT_SHARD_BITS) })),
    { table: "nat", name: POSTROUTING_CHAIN },
    { table: "filter", name: FORWARD_CHAIN },
    { table: "filter", name: INPUT_CHAIN },
  ];
}

/** Whether a chain is named like ours: reconcile removes those it no longer wants. */
export function isOurChainName(name: string): boolean {
  return name === NAT_CHAIN || name.startsWith(`${NAT_CHAIN}-`);
}

/**
 * Jumps into our chains, one per built-in chain, inserted at the top so that other tools'
 * rules cannot shadow them; plus two drops in raw PREROUTING, which must see packets before
 * the nat PREROUTING DNAT rewrites their destination: loopback destinations arriving from
 * outside, and guest packets whose source address does not route back through the TAP they
 * came in on (a guest posing as another guest, the node or the world).
 */
export function nodeJumpRules({ localhost }: NodeFirewallPolicy): Rule[] {
  const local = `-m addrtype --dst-type LOCAL ${node} -j ${NAT_CHAIN}`;
  return [
    { table: "raw", chain: "PREROUTING", spec: `-d ${LOOPBACK} ! -i lo ${node} -j DROP` },
    { table: "raw", chain: "PREROUTING", spec: `-i ${GUEST_TAPS} -m rpfilter --invert ${node} -j DROP` },
    { table: "nat", chain: "PREROUTING", spec: local },
    // Without localhost, 127.0.0.1 must not be DNATed: with no route_localnet the packet would be dropped as a martian.
    { table: "nat", chain: "OUTPUT", spec: localhost ? local : `! -d ${LOOPBACK} ${local}` },
    { table: "nat", chain: "POSTROUTING", spec: `${node} -j ${POSTROUTING_CHAIN}` },
    { table: "filter", chain: "FORWARD", spec: `${node} -j ${FORWARD_CHAIN}` },
    { table: "filter", chain: "INPUT", spec: `-i ${GUEST_TAPS} ${node} -j ${INPUT_CHAIN}` },
  ];
}

/*
 * Why the filter rules are node-wide: nf_tables validates a table at every commit that adds a
 * rule, walking every rule reachable from its base chains (measured: ~0.4 µs per rule, 4 ms
 * per commit at 10000 rules, 0.1 ms when the same rules are unreachable). Per-instance filter
 * rules made every create pay that twice, once per table. What they checked is covered
 * without them: a DNATed connection can only go where one of our DNATs sends it (a guest's
 * exposed port), and the rpfilter drop in raw PREROUTING pins each guest to its own address.
 */

/**
 * The whole content of the node-wide chains, in order: reconcile rewrites a chain whose
 * content differs, since a rule appended after the REJECTs would never match.
 */
export function nodeChainRules({ pool, localhost, egressDeny }: NodeFirewallPolicy): Rule[] {
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
  // Refused with a reset or an ICMP error, so that a guest fails at once instead of hanging.
  // Matched on the original destination, first: a DNAT (hairpin through a node address in a
  // denied range) must not turn a denied destination into an accepted one. Only in the
  // direction the guest opened: replies of a guest to a client that reached it through a node
  // address in a denied range are not egress.
  const deniedForward = egressDeny.flatMap((cidr) => [
    forward(`-i ${GUEST_TAPS} -p tcp -m conntrack --ctorigdst ${conntrackAddress(cidr)} --ctdir ORIGINAL ${node} -j REJECT --reject-with tcp-reset`),
    forward(`-i ${GUEST_TAPS} -m conntrack --ctorigdst ${conntrackAddress(cidr)} --ctdir ORIGINAL ${node} -j REJECT --reject-with icmp-port-unreachable`),
  ]);
  // The node's own addresses in a denied range: ICMP to them too, which RIKLET-INPUT otherwise lets through.
  const deniedInput = egressDeny.flatMap((cidr) => [
    input(`-d ${cidr} -p tcp ${node} -j REJECT --reject-with tcp-reset`),
    input(`-d ${cidr} ${node} -j REJECT --reject-with icmp-port-unreachable`),
  ]);
  return [
    ...portJumps,
    nat(`-s ${pool} ! -d ${pool} ${node} -j MASQUERADE`),
    // Hairpin: a guest calling an exposed port through a node address must get the reply from that address.
    nat(`-s ${pool} -d ${pool} -m conntrack --ctstate DNAT ${node} -j MASQUERADE`),
    // A loopback source cannot leave the node: the guest would answer 127.0.0.1, itself.
    ...(localhost ? [nat(`-s ${LOOPBACK} -d ${pool} ${node} -j MASQUERADE`)] : []),
    // What conntrack does not track (INVALID, or NOTRACK from another tool's raw rule) matches
    // no --ctorigdst and could not be masqueraded: a guest's packets must be tracked to pass.
    forward(`-i ${GUEST_TAPS} -m conntrack --ctstate INVALID,UNTRACKED ${node} -j DROP`),
    ...deniedForward,
    forward(`-d ${pool} -m conntrack --ctstate RELATED,ESTABLISHED ${node} -j ACCEPT`),
    // New connections to a guest only through one of our DNATs, i.e. to a port it exposes.
    forward(`-d ${pool} -o ${GUEST_TAPS} -m conntrack --ctstate DNAT ${node} -j ACCEPT`),
    // A guest's egress out of the pool; its source address was checked by rpfilter in raw.
    forward(`-s ${pool} ! -d ${pool} -i ${GUEST_TAPS} ${node} -j ACCEPT`),
    // Everything else to or from a guest is refused at once rather than left to time out.
    forward(`-d ${pool} -p tcp ${node} -j REJECT --reject-with tcp-reset`),
    forward(`-d ${pool} ${node} -j REJECT --reject-with icmp-port-unreachable`),
    forward(`-i ${GUEST_TAPS} -p tcp ${node} -j REJECT --reject-with tcp-reset`),
    forward(`-i ${GUEST_TAPS} ${node} -j REJECT --reject-with icmp-port-unreachable`),
    input(`-m conntrack --ctstate RELATED,ESTABLISHED ${node} -j RETURN`),
    ...deniedInput,
    input(`-p icmp ${node} -j RETURN`),
    input(`-p tcp ${node} -j REJECT --reject-with tcp-reset`),
    input(`${node} -j REJECT --reject-with icmp-port-unreachable`),
  ];
}

/**
 * The ip6tables rules, in raw PREROUTING: everything that arrives from a guest TAP is dropped
 * before routing, whatever its destination (the node, another guest, the world). Guests are
 * IPv4 only; this backs up the TAPs' own IPv6 settings (disable_ipv6, no link-local address,
 * accept_ra off), should anything turn them back on.
 */
export function nodeIpv6Rules(): Rule[] {
  return [{ table: "raw", chain: "PREROUTING", spec: `-i ${GUEST_TAPS} ${node} -j DROP` }];
}

/** A CIDR as iptables-save prints it in a conntrack match: a single address without its /32. */
function conntrackAddress(cidr: string): string {
  return cidr.endsWith("/32") ? cidr.slice(0, -3) : cidr;
}

/**
 * Every rule one instance owns: a DNAT per exposed port, in the nat shard of its host port.
 * What may reach the guest and what it may send is decided by node-wide filter rules.
 */
export function instanceRules({ instanceId, guestIp, ports }: InstanceFirewall): Rule[] {
  const tag = comment(instanceComment(instanceId));
  return ports.map(({ protocol, hostPort, guestPort, hostIp }): Rule => {
    const destination = hostIp === undefined ? "" : `-d ${hostIp}/32 `;
    return {
      table: "nat",
      chain: portShardChain(hostPort),
      spec: `${destination}-p ${protocol} -m ${protocol} --dport ${hostPort} ${tag} -j DNAT --to-destination ${guestIp}:${guestPort}`,
    };
  });
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
  return `${rule.table} ${rule.chain} ${normalSpec(rule.spec)}`;
}

/**
 * The spec without quotes, its whitespace runs made single spaces. Reconcile keys every rule
 * of the node (15000 calls at 5000 instances): a spec already normal, as nearly all are, is
 * returned without the regex replace that made half of the plan's time.
 */
function normalSpec(spec: string): string {
  const unquoted = spec.includes('"') ? spec.replaceAll('"', "") : spec;
  return /\s\s|^\s|\s$|[^\S ]/.test(unquoted) ? unquoted.replace(/\s+/g, " ").trim() : unquoted;
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
