/**
 * Read-only snapshots of a namespace's network state, for assertions and before/after diffs.
 */
import { isDoomedTapName } from "../../src/network/strategies/function/retired-taps.js";
import { findNft } from "../../src/network/firewall/nftables/nft-firewall.js";
import { isSpareTapName } from "../../src/network/strategies/function/spare-taps.js";
import { TAP_IPV6_SYSCTLS } from "../../src/network/kernel/tap-creator.js";
import { delay, execIn } from "./netns.js";

export interface IpLinkInfo {
  readonly info_kind?: string;
  readonly info_data?: {
    /** For tun devices: "tun" or "tap". */
    readonly type?: string;
    readonly pi?: boolean;
    readonly vnet_hdr?: boolean;
    readonly multi_queue?: boolean;
    readonly persist?: boolean;
    readonly user?: string;
    readonly group?: string;
    readonly [key: string]: unknown;
  };
  readonly [key: string]: unknown;
}

/** One element of `ip -d -j link`. Only the fields tests use are typed. */
export interface IpLink {
  readonly ifindex: number;
  readonly ifname: string;
  readonly flags: readonly string[];
  readonly mtu: number;
  readonly operstate: string;
  readonly address?: string;
  readonly link_type?: string;
  readonly linkinfo?: IpLinkInfo;
  readonly [key: string]: unknown;
}

export interface IpAddrInfo {
  readonly family: "inet" | "inet6";
  readonly local: string;
  readonly prefixlen: number;
  readonly scope?: string;
  readonly [key: string]: unknown;
}

/** One element of `ip -j addr`. */
export interface IpAddr extends IpLink {
  readonly addr_info: readonly IpAddrInfo[];
}

/** One element of `ip -j route`. */
export interface IpRoute {
  readonly dst: string;
  readonly gateway?: string;
  readonly dev?: string;
  readonly prefsrc?: string;
  readonly protocol?: string;
  readonly scope?: string;
  readonly flags: readonly string[];
  readonly [key: string]: unknown;
}

/** `ip -j args...` in `ns`, parsed. */
export async function ipJson<T>(ns: string, args: readonly string[]): Promise<T> {
  const { stdout } = await execIn(ns, "ip", ["-j", ...args]);
  const text = String(stdout).trim();
  return (text === "" ? [] : JSON.parse(text)) as T;
}

/** `ip -d -j link` in `ns` (details on, so `linkinfo` is present). */
export function ipLinks(ns: string): Promise<IpLink[]> {
  return ipJson<IpLink[]>(ns, ["-d", "link", "show"]);
}

/** `ip -j addr` in `ns`. */
export function ipAddrs(ns: string): Promise<IpAddr[]> {
  return ipJson<IpAddr[]>(ns, ["addr", "show"]);
}

/** `ip -j route` (main table, IPv4) in `ns`. */
export function ipRoutes(ns: string): Promise<IpRoute[]> {
  return ipJson<IpRoute[]>(ns, ["-4", "route", "show"]);
}

/** Links that are TAP devices (`linkinfo.info_kind === "tun"`, type tap), spares included. Needs `ip -d` output. */
export function allTapLinks(links: readonly IpLink[]): IpLink[] {
  return links.filter((link) => link.linkinfo?.info_kind === "tun" && (link.linkinfo.info_data?.type ?? "tap") === "tap");
}

/**
 * The TAPs of instances (and any a test made): every TAP but the service's spares
 * (`rik-spare-N`), which it makes in the background whatever the requests, and the retired
 * TAPs of destroyed instances (`rik-doom-N`), which it deletes in the background (see
 * retiredTapsGone). Needs `ip -d` output.
 */
export function tapLinks(links: readonly IpLink[]): IpLink[] {
  return allTapLinks(links).filter((link) => !isSpareTapName(link.ifname) && !isDoomedTapName(link.ifname));
}

/** The retired TAPs of destroyed instances, not deleted yet. Needs `ip -d` output. */
export function retiredTapLinks(links: readonly IpLink[]): IpLink[] {
  return allTapLinks(links).filter((link) => isDoomedTapName(link.ifname));
}

/**
 * Waits until `ns` holds no retired TAP (a DESTROY answers before its TAP is deleted), up to
 * 10 s, and returns those still there then: for the caller to report as leaked.
 */
export async function retiredTapsGone(ns: string): Promise<string[]> {
  for (const started = Date.now(); ; await delay(20)) {
    const left = retiredTapLinks(await ipLinks(ns)).map((link) => link.ifname);
    if (left.length === 0 || Date.now() - started > 10_000) return left;
  }
}

/** The service's spare TAPs. Needs `ip -d` output. */
export function spareTapLinks(links: readonly IpLink[]): IpLink[] {
  return allTapLinks(links).filter((link) => isSpareTapName(link.ifname));
}

/**
 * The spares in `ns` once there are `count` of them, sorted by name (or what there is after
 * 15 s, for the caller's assertion to report). The service makes them one after the other,
 * so once the last one exists, every earlier one is ready to be taken.
 */
export async function sparesOnce(ns: string, count: number): Promise<IpLink[]> {
  for (const started = Date.now(); ; await delay(50)) {
    const spares = spareTapLinks(await ipLinks(ns));
    if (spares.length === count || Date.now() - started > 15_000) return spares.sort((a, b) => a.ifname.localeCompare(b.ifname));
  }
}

/** `ifname -> ["a.b.c.d/len", ...]` for IPv4 addresses. */
export function ipv4ByLink(addrs: readonly IpAddr[]): Map<string, string[]> {
  return new Map(
    addrs.map((link) => [
      link.ifname,
      link.addr_info.filter((info) => info.family === "inet").map((info) => `${info.local}/${info.prefixlen}`),
    ]),
  );
}

/**
 * Drops what differs between two otherwise identical `iptables-save` outputs: `#` comment
 * lines (Generated/Completed timestamps, warnings) and the `[packets:bytes]` counters.
 */
export function normalizeIptablesSave(raw: string): string {
  return raw
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.startsWith("#"))
    .map((line) => line.replace(/\s*\[\d+:\d+\]\s*$/, "").replace(/^\[\d+:\d+\]\s+/, ""))
    .join("\n");
}

/** Normalized `iptables-save` (all tables, or only `table`) in `ns`. */
export async function iptablesSave(ns: string, table?: string): Promise<string> {
  const { stdout } = await execIn(ns, "iptables-save", table === undefined ? [] : ["-t", table]);
  return normalizeIptablesSave(String(stdout));
}

/** Normalized `ip6tables-save` (all tables, or only `table`) in `ns`. */
export async function ip6tablesSave(ns: string, table?: string): Promise<string> {
  const { stdout } = await execIn(ns, "ip6tables-save", table === undefined ? [] : ["-t", table]);
  return normalizeIptablesSave(String(stdout));
}

/** The rule lines (`-A ...`) of a save that contain `substring`. */
export function rulesMatching(save: string, substring: string): string[] {
  return save.split("\n").filter((line) => line.startsWith("-A ") && line.includes(substring));
}

/** Rules (`-A ...`) per table: `{ nat: [...], filter: [...] }`. */
export function rulesByTable(save: string): Record<string, string[]> {
  const tables: Record<string, string[]> = {};
  let current: string[] | undefined;
  for (const line of save.split("\n")) {
    if (line.startsWith("*")) tables[line.slice(1)] = current = [];
    else if (line.startsWith("-A ") && current !== undefined) current.push(line);
  }
  return tables;
}

/**
 * The nft binary. Not "nft" from PATH: under npx and npm, node_modules/.bin comes first and
 * holds an unrelated `nft` (@vercel/nft, a dependency of ava).
 */
export const NFT = findNft();

/** The table of the nft backend, as `nft list` names it. */
export const NFT_TABLE = ["inet", "rik-network"] as const;

/**
 * Drops what differs between two listings of the same `nft list ruleset`: the counters
 * (`counter packets 12 bytes 345`, which iptables-nft's rules carry) and blank lines.
 */
export function normalizeNftRuleset(raw: string): string {
  return raw
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => line.replace(/\bcounter packets \d+ bytes \d+/g, "counter"))
    .join("\n");
}

/** Normalized `nft list ruleset` in `ns`: every table, ours, iptables-nft's and anyone else's. */
export async function nftRuleset(ns: string): Promise<string> {
  const { stdout } = await execIn(ns, NFT, ["list", "ruleset"]);
  return normalizeNftRuleset(String(stdout));
}

/** One rule of a chain as `nft -a list` prints it, its comment and handle apart. */
export interface NftRule {
  readonly text: string;
  readonly comment: string | undefined;
  readonly handle: number;
}

export interface NftChainState {
  /** `type filter hook forward priority filter; policy accept;` as nft prints it; undefined for a regular chain. */
  readonly hook: string | undefined;
  readonly rules: readonly NftRule[];
}

export interface NftTableState {
  readonly chains: Readonly<Record<string, NftChainState>>;
  /** Each set's elements as nft names them (`10.220.0.0/24`), in listing order. */
  readonly sets: Readonly<Record<string, readonly string[]>>;
  /** Each map's elements, sorted: `tcp . 8080 : 10.220.0.2 . 3000`, `198.18.0.1 . udp . 53 : 10.220.0.2 . 53`. */
  readonly maps: Readonly<Record<string, readonly string[]>>;
  /** The elements of every map, sorted: the DNATs. */
  readonly elements: readonly string[];
}

type NftJson = Record<string, unknown>;

/** A set or map element, or one part of a concatenation, as nft's text names it. */
function nftValue(value: unknown): string {
  if (typeof value === "string" || typeof value === "number") return String(value);
  const object = value as NftJson;
  if (Array.isArray(object["concat"])) return (object["concat"] as unknown[]).map(nftValue).join(" . ");
  const prefix = object["prefix"] as { addr: unknown; len: unknown } | undefined;
  if (prefix !== undefined) return `${nftValue(prefix.addr)}/${nftValue(prefix.len)}`;
  if (Array.isArray(object["range"])) return (object["range"] as unknown[]).map(nftValue).join("-");
  const elem = object["elem"] as { val: unknown } | undefined;
  if (elem !== undefined) return nftValue(elem.val);
  throw new Error(`unexpected nft value ${JSON.stringify(value)}`);
}

/** The chains of `nft -a list table` text: each one's hook line and rules (with comments and handles apart). */
export function parseNftChains(listing: string): Record<string, NftChainState> {
  const chains: Record<string, { hook: string | undefined; rules: NftRule[] }> = {};
  let current: { hook: string | undefined; rules: NftRule[] } | undefined;
  for (const line of listing.split("\n")) {
    const header = /^\tchain (\S+) \{/.exec(line);
    if (header !== null) {
      chains[header[1]!] = current = { hook: undefined, rules: [] };
      continue;
    }
    if (current === undefined) continue;
    if (line === "\t}") current = undefined;
    else if (/^\t\ttype \w+ hook /.test(line)) current.hook = line.trim();
    else if (line.startsWith("\t\t")) {
      const rule = /^\t\t(.*?)(?: comment "([^"]*)")? # handle (\d+)$/.exec(line);
      if (rule === null) throw new Error(`unexpected line in an nft chain: ${line}`);
      current.rules.push({ text: rule[1]!, comment: rule[2], handle: Number(rule[3]) });
    }
  }
  return chains;
}

/**
 * The nft backend's table in `ns` (`nft -j list table inet rik-network` for the sets and
 * maps, `nft -a list table ...` for the rules as nft prints them, with their handles), or
 * undefined when it does not exist.
 */
export async function nftTable(ns: string): Promise<NftTableState | undefined> {
  const json = await execIn(ns, NFT, ["-j", "list", "table", ...NFT_TABLE], { reject: false });
  if (json.exitCode !== 0) {
    if (String(json.stderr).includes("No such file or directory")) return undefined;
    throw new Error(`nft -j list table ${NFT_TABLE.join(" ")} failed: ${String(json.stderr)}`);
  }
  const { stdout: text } = await execIn(ns, NFT, ["-a", "list", "table", ...NFT_TABLE]);
  const sets: Record<string, string[]> = {};
  const maps: Record<string, string[]> = {};
  for (const object of (JSON.parse(String(json.stdout)) as { nftables: NftJson[] }).nftables) {
    const set = object["set"] as NftJson | undefined;
    const map = object["map"] as NftJson | undefined;
    const elements = (set ?? map)?.["elem"];
    const list = Array.isArray(elements) ? (elements as unknown[]) : [];
    if (set !== undefined) sets[String(set["name"])] = list.map(nftValue);
    if (map !== undefined) maps[String(map["name"])] = list.map((pair) => (pair as unknown[]).map(nftValue).join(" : ")).sort();
  }
  return { chains: parseNftChains(String(text)), sets, maps, elements: Object.values(maps).flat().sort() };
}

/**
 * The whole firewall of `ns`, both backends' views: normalized iptables-save, ip6tables-save
 * and `nft list ruleset`. Equal before and after means no backend changed anything.
 */
export interface FirewallState {
  readonly iptables: string;
  readonly ip6tables: string;
  readonly nft: string;
}

/** What a namespace where no firewall was ever set up shows. */
export const NO_FIREWALL: FirewallState = { iptables: "", ip6tables: "", nft: "" };

export async function firewallState(ns: string): Promise<FirewallState> {
  const [iptables, ip6tables, nft] = await Promise.all([iptablesSave(ns), ip6tablesSave(ns), nftRuleset(ns)]);
  return { iptables, ip6tables, nft };
}

export interface KernelSnapshot {
  readonly links: IpLink[];
  readonly addrs: IpAddr[];
  readonly routes: IpRoute[];
  readonly iptables: string;
  readonly nft: string;
}

/** Everything above at once, e.g. to compare state before a create and after its destroy. */
export async function snapshot(ns: string): Promise<KernelSnapshot> {
  const [links, addrs, routes, iptables, nft] = await Promise.all([ipLinks(ns), ipAddrs(ns), ipRoutes(ns), iptablesSave(ns), nftRuleset(ns)]);
  return { links, addrs, routes, iptables, nft };
}

/**
 * A comparable digest of a snapshot: link names/kinds/flags, IPv4 addresses, routes and rules (both backends').
 * Volatile fields (ifindex, MACs of non-TAP links, counters) are left out, and so are the
 * service's spare TAPs, which it makes in the background.
 */
export function comparable(state: KernelSnapshot) {
  return {
    links: state.links
      .filter((link) => !isSpareTapName(link.ifname))
      .map((link) => `${link.ifname} ${link.linkinfo?.info_kind ?? "-"} ${[...link.flags].sort().join(",")} mtu ${link.mtu}`)
      .sort(),
    addrs: [...ipv4ByLink(state.addrs)].filter(([name]) => !isSpareTapName(name)).map(([name, cidrs]) => `${name} ${cidrs.join(" ")}`).sort(),
    routes: state.routes.map((route) => `${route.dst} ${route.gateway ?? ""} ${route.dev ?? ""}`.trim()).sort(),
    iptables: state.iptables,
    nft: state.nft,
  };
}

/** What tapIpv6 shows of every TAP: IPv6 off, so no IPv6 address at all. */
export const WITHOUT_IPV6 = { sysctls: { ...TAP_IPV6_SYSCTLS }, addresses: [] as string[] };

/**
 * The IPv6 side of `tap` in `ns`: its TAP_IPV6_SYSCTLS as /proc/sys shows them, and its IPv6
 * addresses (`ip -j -6 addr show dev`), link-local included.
 */
export async function tapIpv6(ns: string, tap: string): Promise<{ sysctls: Record<string, string>; addresses: string[] }> {
  const keys = Object.keys(TAP_IPV6_SYSCTLS);
  const { stdout } = await execIn(ns, "cat", keys.map((key) => `/proc/sys/net/ipv6/conf/${tap}/${key}`));
  const values = String(stdout).trim().split("\n");
  const [link] = await ipJson<IpAddr[]>(ns, ["-6", "addr", "show", "dev", tap]);
  return {
    sysctls: Object.fromEntries(keys.map((key, index) => [key, values[index] ?? ""])),
    addresses: (link?.addr_info ?? []).map((address) => `${address.local}/${address.prefixlen}`),
  };
}
