/**
 * The nftables firewall as data: the one table we own, its node-wide chains, sets and maps,
 * and each instance's DNATs as map elements, rendered to `nft -f` text by pure functions.
 *
 * The text uses only syntax that every nft from 1.0 on reads (numeric chain priorities, no
 * `destroy`, which came in 1.0.8), so that an operator's older `nft` can still list, and load,
 * what a newer one wrote.
 */
import { createHash } from "node:crypto";
import type { InstanceFirewall, NodeFirewallPolicy } from "../firewall.js";
import { TAP_PREFIX } from "../../model/instance-naming.js";

export const NFT_FAMILY = "inet";
export const NFT_TABLE = "rik-network";
/** `inet rik-network`, as commands name the table. */
export const TABLE_REF = `${NFT_FAMILY} ${NFT_TABLE}`;

/** Every guest link (TAP or veth), as an nft interface-name wildcard. */
const GUEST_LINKS = `"${TAP_PREFIX}*"`;
const LOOPBACK = "127.0.0.0/8";
/** Comments of our node-wide rules start with this; the rest is a digest of the rule. */
export const RULE_COMMENT_PREFIX = "rik-network:";

/** Element maps, keyed on what a packet arrives with: protocol and port, or node address, protocol and port. */
export const PORTS_MAP = "ports";
export const BOUND_PORTS_MAP = "bound_ports";
export const POOL_SET = "pool";
export const EGRESS_DENY_SET = "egress_deny";

export interface BaseHook {
  readonly type: "filter" | "nat";
  readonly hook: "prerouting" | "input" | "forward" | "output" | "postrouting";
  readonly priority: number;
}

export interface NftChain {
  readonly name: string;
  /** Absent for a regular chain, reached only by a jump. */
  readonly base?: BaseHook;
  /** The rules, in order, without their comments (see ruleComment). */
  readonly rules: readonly string[];
}

export interface NftSet {
  readonly name: string;
  /** IPv4 CIDRs. */
  readonly elements: readonly string[];
}

export interface NftMap {
  readonly name: string;
  readonly type: readonly string[];
  readonly data: string;
}

/** What the table must hold besides the instances' elements. */
export interface NodeTable {
  readonly chains: readonly NftChain[];
  readonly sets: readonly NftSet[];
  readonly maps: readonly NftMap[];
}

/** One DNAT: the map it goes in, what a packet arrives with, and where it is sent. */
export interface MapElement {
  readonly map: string;
  /** e.g. `tcp . 8080`, or `192.0.2.10 . udp . 5353` in bound_ports. */
  readonly key: string;
  /** e.g. `10.220.0.2 . 3000`. */
  readonly value: string;
}

const MAPS: readonly NftMap[] = [
  { name: PORTS_MAP, type: ["inet_proto", "inet_service"], data: "ipv4_addr . inet_service" },
  { name: BOUND_PORTS_MAP, type: ["ipv4_addr", "inet_proto", "inet_service"], data: "ipv4_addr . inet_service" },
];

/**
 * The chain priorities, as numbers. The NAT chains sit one before the standard ones (dstnat
 * -100, srcnat 100), where iptables-nft's and other tools' NAT chains are: the first NAT binding
 * of a connection wins, and ties go by registration order, so our DNATs could otherwise lose
 * to another tool's rule for the same port. (The iptables backend gets the same by its jump at
 * the top of the built-in chain.)
 */
const RAW = -300;
const DSTNAT = -101;
const FILTER = 0;
const SRCNAT = 99;

/** Both DNAT rules: a port bound to one node address first, then a port on every local address. */
const DNAT_RULES = [
  `fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @${BOUND_PORTS_MAP}`,
  `fib daddr type local dnat ip to meta l4proto . th dport map @${PORTS_MAP}`,
];

/**
 * The node-wide chains. The same policy as the iptables backend (iptables-rules.ts explains
 * each rule's reason), with one difference that follows from nftables: each chain is a base
 * chain of its own at its hook, so an accept here ends only our table's verdict. Another
 * table's drop (e.g. iptables' FORWARD policy DROP) still drops (NftFirewall.conflicts finds it).
 */
export function nodeChains({ localhost }: NodeFirewallPolicy): NftChain[] {
  const pool = `@${POOL_SET}`;
  const deny = `@${EGRESS_DENY_SET}`;
  return [
    {
      name: "raw_prerouting",
      base: { type: "filter", hook: "prerouting", priority: RAW },
      rules: [
        // Guests are IPv4 only: this backs up the TAPs' own IPv6 settings.
        `iifname ${GUEST_LINKS} meta nfproto ipv6 drop`,
        `iifname != "lo" ip daddr ${LOOPBACK} drop`,
        // A guest's source address must route back through the link it came in on, as a unicast
        // route: `oif missing` alone lets a local or broadcast source through (the /30's
        // broadcast address routes through the TAP), which iptables' rpfilter drops.
        `iifname ${GUEST_LINKS} fib saddr . iif oif missing drop`,
        `iifname ${GUEST_LINKS} fib saddr type != unicast drop`,
      ],
    },
    { name: "nat_prerouting", base: { type: "nat", hook: "prerouting", priority: DSTNAT }, rules: DNAT_RULES },
    {
      name: "nat_output",
      base: { type: "nat", hook: "output", priority: DSTNAT },
      // Without localhost, 127.0.0.1 must not be DNATed: with no route_localnet the packet would be dropped as a martian.
      rules: [...(localhost ? [] : [`ip daddr ${LOOPBACK} return`]), ...DNAT_RULES],
    },
    {
      name: "nat_postrouting",
      base: { type: "nat", hook: "postrouting", priority: SRCNAT },
      rules: [
        `ip saddr ${pool} ip daddr != ${pool} masquerade`,
        `ip saddr ${pool} ip daddr ${pool} ct status dnat masquerade`,
        ...(localhost ? [`ip saddr ${LOOPBACK} ip daddr ${pool} masquerade`] : []),
      ],
    },
    {
      name: "filter_forward",
      base: { type: "filter", hook: "forward", priority: FILTER },
      rules: [
        `iifname ${GUEST_LINKS} ct state invalid,untracked drop`,
        `iifname ${GUEST_LINKS} ct direction original ct original ip daddr ${deny} meta l4proto tcp reject with tcp reset`,
        `iifname ${GUEST_LINKS} ct direction original ct original ip daddr ${deny} reject with icmpx type port-unreachable`,
        `ip daddr ${pool} ct state established,related accept`,
        `ip daddr ${pool} oifname ${GUEST_LINKS} ct status dnat accept`,
        `iifname ${GUEST_LINKS} ip saddr ${pool} ip daddr != ${pool} accept`,
        `ip daddr ${pool} meta l4proto tcp reject with tcp reset`,
        `ip daddr ${pool} reject with icmpx type port-unreachable`,
        `iifname ${GUEST_LINKS} meta l4proto tcp reject with tcp reset`,
        `iifname ${GUEST_LINKS} reject with icmpx type port-unreachable`,
      ],
    },
    { name: "filter_input", base: { type: "filter", hook: "input", priority: FILTER }, rules: [`iifname ${GUEST_LINKS} jump guest_input`] },
    {
      name: "guest_input",
      rules: [
        "ct state established,related return",
        `ip daddr ${deny} meta l4proto tcp reject with tcp reset`,
        `ip daddr ${deny} reject with icmpx type port-unreachable`,
        "meta l4proto icmp return",
        "meta l4proto tcp reject with tcp reset",
        "reject with icmpx type port-unreachable",
      ],
    },
  ];
}

/** The node-wide part of the table: chains, the pool and egress-deny sets, and the empty maps. */
export function nodeTable(policy: NodeFirewallPolicy): NodeTable {
  return {
    chains: nodeChains(policy),
    sets: [
      { name: POOL_SET, elements: [policy.pool] },
      { name: EGRESS_DENY_SET, elements: withoutContained(policy.egressDeny) },
    ],
    maps: MAPS,
  };
}

/**
 * An interval set refuses overlapping elements (nft 1.0.6 has no auto-merge by default), so
 * a CIDR inside another listed one is left out: the set covers the same addresses.
 */
export function withoutContained(cidrs: readonly string[]): string[] {
  const ranges = cidrs.map((cidr) => ({ cidr, range: cidrRange(cidr) }));
  const covers = (outer: [number, number], inner: [number, number]) => outer[0] <= inner[0] && inner[1] <= outer[1];
  const same = (a: [number, number], b: [number, number]) => a[0] === b[0] && a[1] === b[1];
  return ranges
    .filter(({ range }, at) => !ranges.some((other, index) => index !== at && covers(other.range, range) && (!same(other.range, range) || index < at)))
    .map(({ cidr }) => cidr);
}

/** The comment that identifies a node-wide rule: its chain and text, digested, so reconcile can compare rules without parsing nft's output. */
export function ruleComment(chain: string, rule: string): string {
  return `${RULE_COMMENT_PREFIX}${createHash("sha256").update(chain).update("\0").update(rule).digest("hex").slice(0, 16)}`;
}

function chainHeader(chain: NftChain): string {
  const base = chain.base;
  return base === undefined ? "" : `{ type ${base.type} hook ${base.hook} priority ${base.priority}; policy accept; }`;
}

/** `add chain`, with its hook when it is a base chain. */
export function renderChain(chain: NftChain): string {
  return `add chain ${TABLE_REF} ${chain.name} ${chainHeader(chain)}`.trimEnd();
}

/** The chain's rules, each with its comment. A jump's target chain must exist first: render every chain before any rule. */
export function renderRules(chain: NftChain): string[] {
  return chain.rules.map((rule) => `add rule ${TABLE_REF} ${chain.name} ${rule} comment "${ruleComment(chain.name, rule)}"`);
}

export function renderSet(set: NftSet): string[] {
  const elements = set.elements.length === 0 ? "" : ` elements = { ${set.elements.join(", ")} };`;
  return [`add set ${TABLE_REF} ${set.name} { type ipv4_addr; flags interval;${elements} }`];
}

export function renderMap(map: NftMap): string {
  return `add map ${TABLE_REF} ${map.name} { type ${map.type.join(" . ")} : ${map.data}; }`;
}

/** Every DNAT of one instance, as map elements. */
export function instanceElements({ guestIp, ports }: InstanceFirewall): MapElement[] {
  return ports.map(({ protocol, hostPort, guestPort, hostIp }) =>
    hostIp === undefined
      ? { map: PORTS_MAP, key: `${protocol} . ${hostPort}`, value: `${guestIp} . ${guestPort}` }
      : { map: BOUND_PORTS_MAP, key: `${hostIp} . ${protocol} . ${hostPort}`, value: `${guestIp} . ${guestPort}` },
  );
}

function byMap<T extends { readonly map: string }>(elements: readonly T[]): Map<string, T[]> {
  const grouped = new Map<string, T[]>();
  for (const element of elements) {
    const list = grouped.get(element.map);
    if (list === undefined) grouped.set(element.map, [element]);
    else list.push(element);
  }
  return grouped;
}

/** `add element` lines, one per map. "" when there is nothing to add. */
export function renderAddElements(elements: readonly MapElement[]): string {
  return [...byMap(elements)]
    .map(([map, list]) => `add element ${TABLE_REF} ${map} { ${list.map(({ key, value }) => `${key} : ${value}`).join(", ")} }\n`)
    .join("");
}

/** `delete element` lines, by key, one per map. "" when there is nothing to delete. */
export function renderDeleteElements(elements: readonly { readonly map: string; readonly key: string }[]): string {
  return [...byMap(elements)].map(([map, list]) => `delete element ${TABLE_REF} ${map} { ${list.map(({ key }) => key).join(", ")} }\n`).join("");
}

/** An IPv4 CIDR (or a single address) as its first and last address. */
export function cidrRange(cidr: string): [number, number] {
  const [address, length] = cidr.split("/") as [string, string | undefined];
  const bits = length === undefined ? 32 : Number(length);
  const value = address.split(".").reduce((sum, part) => sum * 256 + Number(part), 0);
  const size = 2 ** (32 - bits);
  const first = value - (value % size);
  return [first, first + size - 1];
}
