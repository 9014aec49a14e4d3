/**
 * Whether a node's kernel holds exactly what its service says it holds: every instance that List
 * returns has its TAP, up, with its host address and nothing else, and its DNATs, each once, in
 * the backend's own state (map elements of `table inet rik-network` for nft, rules tagged
 * `rik:<id>` for iptables); there is no other TAP (spares aside), no retired TAP left, no pool
 * address elsewhere, no other DNAT, and nothing of the other backend. The comparison is pure; reading the kernel goes
 * through test/helpers/kernel-state.ts.
 */
import type { InstanceNetwork } from "../src/gen/rik/network/v1/workload_network_pb.js";
import { ipAddrs, ipLinks, ipv4ByLink, normalizeIptablesSave, retiredTapLinks, rulesMatching, tapLinks } from "../test/helpers/kernel-state.js";
import { delay } from "../test/helpers/netns.js";
import { Ipv4Cidr, parseIpv4 } from "../src/network/model/ipv4-cidr.js";
import { runIn } from "./ns-run.js";
import type { FirewallBackend } from "./options.js";

/** The nft backend's table. */
export const NFT_TABLE = { family: "inet", name: "rik-network" } as const;

/** The API's Protocol enum, by number. */
const PROTOCOLS: Record<number, string> = { 1: "tcp", 2: "udp" };
/** IP protocol numbers, as an nft listing may give them. */
const IP_PROTOCOLS: Record<number, string> = { 6: "tcp", 17: "udp" };

/** One DNAT as both backends can say it: `tcp *:8080 -> 10.220.0.2:3000`, or with the host address it is bound to. */
export function dnatText(protocol: string, hostIp: string, hostPort: number, guestIp: string, guestPort: number): string {
  return `${protocol} ${hostIp === "" ? "*" : hostIp}:${hostPort} -> ${guestIp}:${guestPort}`;
}

export interface ObservedKernel {
  /** TAPs of the node (spares left out): name, up or not, IPv4 addresses. */
  readonly taps: readonly { readonly name: string; readonly up: boolean }[];
  /** Retired TAPs of destroyed instances (`rik-doom-N`) not deleted (or made spares) yet. */
  readonly retired: readonly string[];
  /** Link name to its IPv4 addresses, `a.b.c.d/len`, every link. */
  readonly addresses: ReadonlyMap<string, readonly string[]>;
  /** The DNATs of the backend under test, in `dnatText` form. */
  readonly dnats: readonly string[];
  /** What the other backend holds of ours (its rules, its table): must be empty. */
  readonly otherBackend: readonly string[];
}

/** Missing, unexpected and repeated entries of `actual` against `expected`, as lines. */
function difference(label: string, actual: readonly string[], expected: readonly string[]): string[] {
  const counts = (lines: readonly string[]) => {
    const map = new Map<string, number>();
    for (const line of lines) map.set(line, (map.get(line) ?? 0) + 1);
    return map;
  };
  const have = counts(actual);
  const want = counts(expected);
  const lines: string[] = [];
  for (const [line, n] of want) if (!have.has(line)) lines.push(`${label} missing: ${line}${n > 1 ? ` (expected ${n} times)` : ""}`);
  for (const [line, n] of have) {
    const wanted = want.get(line);
    if (wanted === undefined) lines.push(`${label} unexpected: ${line}${n > 1 ? ` (${n} times)` : ""}`);
    else if (n !== wanted) lines.push(`${label} ${n} times, expected ${wanted}: ${line}`);
  }
  return lines;
}

/** Every way `observed` differs from "exactly these instances on a pool of `pool`"; [] when it is exact. */
export function compareKernel(networks: readonly InstanceNetwork[], observed: ObservedKernel, pool: string): string[] {
  const functions = networks.flatMap((network) => (network.network.case === "function" ? [network.network.value] : []));
  const differences = difference(
    "TAP",
    observed.taps.map((tap) => tap.name),
    functions.map((fn) => fn.tapName),
  );
  differences.push(...observed.retired.map((name) => `retired TAP not deleted: ${name}`));
  const expectedTaps = new Set(functions.map((fn) => fn.tapName));
  for (const fn of functions) {
    const tap = observed.taps.find((candidate) => candidate.name === fn.tapName);
    if (tap === undefined) continue;
    differences.push(...difference(`address of ${fn.tapName}`, observed.addresses.get(fn.tapName) ?? [], [`${fn.hostIp}/${fn.prefixLength}`]));
    if (!tap.up) differences.push(`TAP ${fn.tapName} is down`);
  }
  const cidr = Ipv4Cidr.parse(pool);
  for (const [link, addresses] of observed.addresses) {
    if (expectedTaps.has(link)) continue;
    for (const address of addresses) {
      const ip = parseIpv4(address.split("/")[0]!);
      if (ip !== undefined && cidr.contains(ip)) differences.push(`pool address ${address} on ${link}, which is not an instance's TAP`);
    }
  }
  const expectedDnats = functions.flatMap((fn) =>
    fn.ports.map((port) => dnatText(PROTOCOLS[port.protocol] ?? `protocol ${port.protocol}`, port.hostIp, port.hostPort, fn.guestIp, port.guestPort)),
  );
  differences.push(...difference("DNAT", observed.dnats, expectedDnats));
  differences.push(...observed.otherBackend.map((line) => `left by the other backend: ${line}`));
  return differences;
}

const IPTABLES_DNAT = /^-A \S+ (?:-d (\S+)\/32 )?-p (tcp|udp) -m \2 --dport (\d+) .*-j DNAT --to-destination ([\d.]+):(\d+)$/;

/** The instances' DNATs of an iptables-save (rules tagged `rik:<id>`), in `dnatText` form; a tagged rule of another shape as itself. */
export function iptablesDnats(save: string): string[] {
  return rulesMatching(normalizeIptablesSave(save), '"rik:').map((line) => {
    const match = IPTABLES_DNAT.exec(line);
    return match === null ? `unparsed rule: ${line}` : dnatText(match[2]!, match[1] ?? "", Number(match[3]), match[4]!, Number(match[5]));
  });
}

/** Lines of an iptables-save that belong to rik-network (its chains, its tags): what the nft backend must not leave. */
export function iptablesLeftovers(save: string): string[] {
  return normalizeIptablesSave(save)
    .split("\n")
    .filter((line) => /\bRIKLET|rik:|rik-network/.test(line));
}

type NftValue = string | number | { readonly concat?: readonly NftValue[]; readonly elem?: { readonly val: NftValue }; readonly [key: string]: unknown };

function nftAtoms(value: NftValue): (string | number)[] {
  if (typeof value !== "object") return [value];
  if (value.elem !== undefined) return nftAtoms(value.elem.val);
  if (value.concat !== undefined) return value.concat.flatMap(nftAtoms);
  return [JSON.stringify(value)];
}

/**
 * The DNATs held in the maps `ports` (`proto . port : guest . port`) and `bound_ports`
 * (`address . proto . port : guest . port`) of `nft -j list table inet rik-network`, in
 * `dnatText` form; an element of another shape as itself.
 */
export function nftDnats(listing: string): string[] {
  const document = JSON.parse(listing) as { nftables?: { map?: { name: string; elem?: [NftValue, NftValue][] } }[] };
  const dnats: string[] = [];
  for (const entry of document.nftables ?? []) {
    const map = entry.map;
    if (map === undefined || (map.name !== "ports" && map.name !== "bound_ports")) continue;
    for (const [key, value] of map.elem ?? []) {
      const keyAtoms = nftAtoms(key);
      const [guestIp, guestPort] = nftAtoms(value);
      const [hostIp, protocolAtom, hostPort] = map.name === "ports" ? ["", ...keyAtoms] : keyAtoms;
      // nft names the protocols it knows, and may print one as its number.
      const protocol = typeof protocolAtom === "number" ? (IP_PROTOCOLS[protocolAtom] ?? `protocol ${protocolAtom}`) : protocolAtom;
      const shaped = keyAtoms.length === (map.name === "ports" ? 2 : 3) && typeof guestIp === "string" && typeof guestPort === "number";
      dnats.push(shaped ? dnatText(String(protocol), String(hostIp), Number(hostPort), guestIp, guestPort) : `unparsed element of ${map.name}: ${JSON.stringify([key, value])}`);
    }
  }
  return dnats;
}

/** `nft -j list table inet rik-network` in `ns`, or undefined when there is no such table. */
async function nftListing(ns: string): Promise<string | undefined> {
  try {
    return (await runIn(ns, "nft", ["-j", "list", "table", NFT_TABLE.family, NFT_TABLE.name])).stdout;
  } catch (error) {
    if (/No such file or directory/.test((error as Error).message)) return undefined;
    throw error;
  }
}

export interface KernelReadOptions {
  readonly ns: string;
  readonly firewall: FirewallBackend;
  /** iptables-save of the iptables flavour in use. */
  readonly saveCommand: string;
}

/** Reads what `compareKernel` compares. */
export async function observeKernel({ ns, firewall, saveCommand }: KernelReadOptions): Promise<ObservedKernel> {
  const [links, addrs, save, listing] = await Promise.all([ipLinks(ns), ipAddrs(ns), runIn(ns, saveCommand, []), nftListing(ns)]);
  const taps = tapLinks(links).map((link) => ({ name: link.ifname, up: link.flags.includes("UP") }));
  const retired = retiredTapLinks(links).map((link) => link.ifname);
  const addresses = ipv4ByLink(addrs);
  if (firewall === "nft") {
    return { taps, retired, addresses, dnats: listing === undefined ? [] : nftDnats(listing), otherBackend: iptablesLeftovers(save.stdout) };
  }
  return {
    taps,
    retired,
    addresses,
    dnats: iptablesDnats(save.stdout),
    otherBackend: listing === undefined ? [] : [`table ${NFT_TABLE.family} ${NFT_TABLE.name}`],
  };
}

/** The host ports DNATed in the backend's state, whoever they belong to. */
export async function exposedPorts(ns: string, firewall: FirewallBackend, saveCommand: string): Promise<Set<number>> {
  const dnats =
    firewall === "nft" ? nftDnats((await nftListing(ns)) ?? '{"nftables":[]}') : iptablesDnats((await runIn(ns, saveCommand, [])).stdout);
  return new Set(dnats.flatMap((dnat) => /^\S+ \S+:(\d+) ->/.exec(dnat)?.[1] ?? []).map(Number));
}

export interface KernelCheck {
  /** Differences at the last comparison: [] when the kernel came out exact. */
  readonly differences: string[];
  /** From the first comparison until one came out exact; undefined when none did. */
  readonly exactAfterMs: number | undefined;
  readonly comparisons: number;
  /** Instances List returned at the last comparison. */
  readonly listed: number;
}

export interface KernelCheckOptions extends KernelReadOptions {
  readonly pool: string;
  /** The service's List, read again before every comparison. */
  readonly networks: () => Promise<InstanceNetwork[]>;
  /** How long work the service left to the background (a TAP deleted after the answer) may take. */
  readonly timeoutMs: number;
}

/** Compares List with the kernel until they agree or `timeoutMs` has passed. */
export async function kernelDifferences(options: KernelCheckOptions): Promise<KernelCheck> {
  const started = performance.now();
  for (let comparisons = 1; ; comparisons++) {
    const networks = await options.networks();
    const differences = compareKernel(networks, await observeKernel(options), options.pool);
    const elapsed = performance.now() - started;
    if (differences.length === 0) return { differences, exactAfterMs: elapsed, comparisons, listed: networks.length };
    if (elapsed >= options.timeoutMs) return { differences, exactAfterMs: undefined, comparisons, listed: networks.length };
    await delay(250);
  }
}
