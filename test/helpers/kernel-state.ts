/**
 * Read-only snapshots of a namespace's network state, for assertions and before/after diffs.
 */
import { isDoomedTapName } from "../../src/network/strategies/function/retired-taps.js";
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

export interface KernelSnapshot {
  readonly links: IpLink[];
  readonly addrs: IpAddr[];
  readonly routes: IpRoute[];
  readonly iptables: string;
}

/** Everything above at once, e.g. to compare state before a create and after its destroy. */
export async function snapshot(ns: string): Promise<KernelSnapshot> {
  const [links, addrs, routes, iptables] = await Promise.all([ipLinks(ns), ipAddrs(ns), ipRoutes(ns), iptablesSave(ns)]);
  return { links, addrs, routes, iptables };
}

/**
 * A comparable digest of a snapshot: link names/kinds/flags, IPv4 addresses, routes and rules.
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
