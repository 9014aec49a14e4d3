/**
 * Compares a node namespace's kernel state with a set of instance networks, as the service
 * reports them: every difference is a line of text, so "exactly as expected" is `[]`.
 * The expected rules are written out here independently of src/, so that a bug in the
 * service's rule rendering cannot hide itself: for the iptables backend as iptables-save
 * prints them, for the nft backend as `nft list` (1.0.6) prints them. Whichever backend the
 * service runs (TEST_FIREWALL_BACKEND), the other one must have left nothing of ours.
 */
import type { InstanceNetwork } from "../../src/gen/rik/network/v1/workload_network_pb.js";
import { TEST_FIREWALL_BACKEND } from "./firewall-backend.js";
import { ip6tablesSave, iptablesSave, ipAddrs, ipLinks, ipv4ByLink, nftTable, retiredTapsGone, rulesMatching, tapLinks } from "./kernel-state.js";

const PROTOCOLS: Record<number, string> = { 1: "tcp", 2: "udp" };

function ipv4(text: string): number {
  return text.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

/** The iptables-save lines one instance owns: a DNAT per port, in the nat chain of its host port's 512-port block. */
export function expectedRules(network: InstanceNetwork): string[] {
  const fn = network.network.value!;
  const tag = `-m comment --comment "rik:${network.instanceId}"`;
  return fn.ports.map((port) => {
    const p = PROTOCOLS[port.protocol]!;
    const bound = port.hostIp === "" ? "" : `-d ${port.hostIp}/32 `;
    const shard = `RIKLET-P${Math.floor(port.hostPort / 512)}`;
    return `-A ${shard} ${bound}-p ${p} -m ${p} --dport ${port.hostPort} ${tag} -j DNAT --to-destination ${fn.guestIp}:${port.guestPort}`;
  });
}

/** The node-wide lines, present exactly once whatever the instances (with the default --localhost true and --egress-deny 169.254.0.0/16). */
export function expectedNodeRules(pool: string): string[] {
  const c = "-m comment --comment rik-network";
  const portJumps = ["tcp", "udp"].flatMap((p) =>
    Array.from({ length: 128 }, (_, k) => `-A RIKLET -p ${p} -m ${p} --dport ${k * 512}:${k * 512 + 511} ${c} -j RIKLET-P${k}`),
  );
  return [
    ...portJumps,
    `-A PREROUTING -d 127.0.0.0/8 ! -i lo ${c} -j DROP`,
    `-A PREROUTING -i rik+ -m rpfilter --invert ${c} -j DROP`,
    `-A PREROUTING -m addrtype --dst-type LOCAL ${c} -j RIKLET`,
    `-A OUTPUT -m addrtype --dst-type LOCAL ${c} -j RIKLET`,
    `-A POSTROUTING ${c} -j RIKLET-POSTROUTING`,
    `-A RIKLET-POSTROUTING -s ${pool} ! -d ${pool} ${c} -j MASQUERADE`,
    `-A RIKLET-POSTROUTING -s ${pool} -d ${pool} -m conntrack --ctstate DNAT ${c} -j MASQUERADE`,
    `-A RIKLET-POSTROUTING -s 127.0.0.0/8 -d ${pool} ${c} -j MASQUERADE`,
    `-A INPUT -i rik+ ${c} -j RIKLET-INPUT`,
    `-A FORWARD ${c} -j RIKLET-FORWARD`,
    `-A RIKLET-FORWARD -i rik+ -m conntrack --ctstate INVALID,UNTRACKED ${c} -j DROP`,
    `-A RIKLET-FORWARD -i rik+ -p tcp -m conntrack --ctorigdst 169.254.0.0/16 --ctdir ORIGINAL ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-FORWARD -i rik+ -m conntrack --ctorigdst 169.254.0.0/16 --ctdir ORIGINAL ${c} -j REJECT --reject-with icmp-port-unreachable`,
    `-A RIKLET-FORWARD -d ${pool} -m conntrack --ctstate RELATED,ESTABLISHED ${c} -j ACCEPT`,
    `-A RIKLET-FORWARD -d ${pool} -o rik+ -m conntrack --ctstate DNAT ${c} -j ACCEPT`,
    `-A RIKLET-FORWARD -s ${pool} ! -d ${pool} -i rik+ ${c} -j ACCEPT`,
    `-A RIKLET-FORWARD -d ${pool} -p tcp ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-FORWARD -d ${pool} ${c} -j REJECT --reject-with icmp-port-unreachable`,
    `-A RIKLET-FORWARD -i rik+ -p tcp ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-FORWARD -i rik+ ${c} -j REJECT --reject-with icmp-port-unreachable`,
    `-A RIKLET-INPUT -m conntrack --ctstate RELATED,ESTABLISHED ${c} -j RETURN`,
    `-A RIKLET-INPUT -d 169.254.0.0/16 -p tcp ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-INPUT -d 169.254.0.0/16 ${c} -j REJECT --reject-with icmp-port-unreachable`,
    `-A RIKLET-INPUT -p icmp ${c} -j RETURN`,
    `-A RIKLET-INPUT -p tcp ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-INPUT ${c} -j REJECT --reject-with icmp-port-unreachable`,
  ];
}

/** The nft backend's DNATs of one instance: an element of `ports`, or of `bound_ports` for a port bound to one node address. */
export function expectedElements(network: InstanceNetwork): string[] {
  const fn = network.network.value!;
  return fn.ports.map((port) => {
    const key = `${PROTOCOLS[port.protocol]!} . ${port.hostPort}`;
    return `${port.hostIp === "" ? "" : `${port.hostIp} . `}${key} : ${fn.guestIp} . ${port.guestPort}`;
  });
}

/** A base chain's hook line, as nft prints it. */
const hook = (type: string, at: string, priority: string) => `type ${type} hook ${at} priority ${priority}; policy accept;`;

/**
 * The nft backend's chains, each with its hook line and its rules in order (comments aside),
 * with the default --localhost true and --egress-deny 169.254.0.0/16 (the `egress_deny` set).
 */
export function expectedNftChains(): Record<string, { hook: string | undefined; rules: string[] }> {
  const dnat = [
    "fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @bound_ports",
    "fib daddr type local dnat ip to meta l4proto . th dport map @ports",
  ];
  return {
    raw_prerouting: {
      hook: hook("filter", "prerouting", "raw"),
      rules: [
        'iifname "rik*" meta nfproto ipv6 drop',
        'iifname != "lo" ip daddr 127.0.0.0/8 drop',
        'iifname "rik*" fib saddr . iif oif missing drop',
        'iifname "rik*" fib saddr type != unicast drop',
      ],
    },
    // One before the standard NAT priorities, as nft 1.0.6 prints them.
    nat_prerouting: { hook: hook("nat", "prerouting", "dstnat - 1"), rules: dnat },
    nat_output: { hook: hook("nat", "output", "-101"), rules: dnat },
    nat_postrouting: {
      hook: hook("nat", "postrouting", "srcnat - 1"),
      rules: [
        "ip saddr @pool ip daddr != @pool masquerade",
        "ip saddr @pool ip daddr @pool ct status dnat masquerade",
        "ip saddr 127.0.0.0/8 ip daddr @pool masquerade",
      ],
    },
    filter_forward: {
      hook: hook("filter", "forward", "filter"),
      rules: [
        'iifname "rik*" ct state invalid,untracked drop',
        'iifname "rik*" ct direction original ct original ip daddr @egress_deny meta l4proto tcp reject with tcp reset',
        'iifname "rik*" ct direction original ct original ip daddr @egress_deny reject',
        "ip daddr @pool ct state established,related accept",
        'ip daddr @pool oifname "rik*" ct status dnat accept',
        'iifname "rik*" ip saddr @pool ip daddr != @pool accept',
        "ip daddr @pool meta l4proto tcp reject with tcp reset",
        "ip daddr @pool reject",
        'iifname "rik*" meta l4proto tcp reject with tcp reset',
        'iifname "rik*" reject',
      ],
    },
    filter_input: { hook: hook("filter", "input", "filter"), rules: ['iifname "rik*" jump guest_input'] },
    guest_input: {
      hook: undefined,
      rules: [
        "ct state established,related return",
        "ip daddr @egress_deny meta l4proto tcp reject with tcp reset",
        "ip daddr @egress_deny reject",
        "meta l4proto icmp return",
        "meta l4proto tcp reject with tcp reset",
        "reject",
      ],
    },
  };
}

/** Node-chain lines in the order iptables-save prints them: the order decides what matches. */
function chainOrder(save: string, chain: string): string[] {
  return save.split("\n").filter((line) => line.startsWith(`-A ${chain} `));
}

function difference(label: string, actual: readonly string[], expected: readonly string[]): string[] {
  const missing = expected.filter((line) => !actual.includes(line)).map((line) => `${label} missing: ${line}`);
  const extra = actual.filter((line) => !expected.includes(line)).map((line) => `${label} unexpected: ${line}`);
  const counts = new Map<string, number>();
  for (const line of actual) counts.set(line, (counts.get(line) ?? 0) + 1);
  const duplicated = [...counts].filter(([, n]) => n > 1).map(([line, n]) => `${label} ${n} times: ${line}`);
  return [...missing, ...extra, ...duplicated];
}

/**
 * Every way the kernel differs from "exactly these instances, on a pool of `pool`", on the
 * backend the service runs, once the retired TAPs of destroyed instances are gone (any left
 * is a difference).
 */
export async function kernelDiff(ns: string, networks: readonly InstanceNetwork[], pool: string): Promise<string[]> {
  const retired = await retiredTapsGone(ns);
  const [links, addrs, firewall] = await Promise.all([
    ipLinks(ns),
    ipAddrs(ns),
    TEST_FIREWALL_BACKEND === "nft" ? nftDiff(ns, networks, pool) : iptablesDiff(ns, networks, pool),
  ]);
  const taps = tapLinks(links);
  const byLink = ipv4ByLink(addrs);
  const diffs = difference(
    "TAP",
    taps.map((link) => link.ifname).sort(),
    networks.map((n) => n.network.value!.tapName).sort(),
  );
  diffs.push(...retired.map((name) => `retired TAP ${name} not deleted`));
  for (const network of networks) {
    const fn = network.network.value!;
    const tap = taps.find((link) => link.ifname === fn.tapName);
    if (tap === undefined) continue;
    diffs.push(...difference(`address of ${fn.tapName}`, byLink.get(fn.tapName) ?? [], [`${fn.hostIp}/${fn.prefixLength}`]));
    if (!tap.flags.includes("UP")) diffs.push(`TAP ${fn.tapName} is down`);
  }
  const [net, bits] = pool.split("/") as [string, string];
  const poolStart = ipv4(net);
  const inPool = (cidr: string) => {
    const value = ipv4(cidr.split("/")[0]!);
    return value >= poolStart && value < poolStart + 2 ** (32 - Number(bits));
  };
  for (const [link, cidrs] of byLink) {
    if (!taps.some((tap) => tap.ifname === link)) {
      diffs.push(...cidrs.filter(inPool).map((cidr) => `pool address ${cidr} on ${link}, which is not an instance's TAP`));
    }
  }
  diffs.push(...firewall);
  return diffs;
}

/** Whether the iptables backend left anything of ours in iptables-save or ip6tables-save. */
async function iptablesLeftovers(ns: string): Promise<string[]> {
  const [save, save6] = await Promise.all([iptablesSave(ns), ip6tablesSave(ns)]);
  const ours = (line: string) => /rik-network|"rik:|RIKLET/.test(line);
  return [...save.split("\n"), ...save6.split("\n")].filter(ours).map((line) => `iptables backend leftover with the nft backend running: ${line}`);
}

/** The nft backend's table against the expected chains, sets and elements; and nothing of the iptables backend. */
async function nftDiff(ns: string, networks: readonly InstanceNetwork[], pool: string): Promise<string[]> {
  const [table, leftovers] = await Promise.all([nftTable(ns), iptablesLeftovers(ns)]);
  if (table === undefined) return ["table inet rik-network is missing", ...leftovers];
  const expected = expectedNftChains();
  const diffs = difference("nft chain", Object.keys(table.chains), Object.keys(expected));
  for (const [name, want] of Object.entries(expected)) {
    const have = table.chains[name];
    if (have === undefined) continue;
    if (have.hook !== want.hook) diffs.push(`chain ${name} is "${have.hook ?? "a regular chain"}", not "${want.hook ?? "a regular chain"}"`);
    const rules = have.rules.map((rule) => rule.text);
    if (rules.join("\n") !== want.rules.join("\n")) diffs.push(`chain ${name} is not exactly, in order: ${want.rules.join(" | ")} (it is: ${rules.join(" | ")})`);
    diffs.push(...have.rules.filter((rule) => !/^rik-network:[0-9a-f]{16}$/.test(rule.comment ?? "")).map((rule) => `untagged rule in ${name}: ${rule.text}`));
  }
  diffs.push(...difference("nft set", Object.keys(table.sets).sort(), ["egress_deny", "pool"]));
  diffs.push(...difference("pool element", table.sets["pool"] ?? [], [pool]));
  diffs.push(...difference("egress_deny element", table.sets["egress_deny"] ?? [], ["169.254.0.0/16"]));
  diffs.push(...difference("nft map", Object.keys(table.maps).sort(), ["bound_ports", "ports"]));
  diffs.push(...difference("DNAT element", table.elements, networks.flatMap((n) => expectedElements(n))));
  return [...diffs, ...leftovers];
}

/** The iptables backend's rules against the expected ones; and no table of the nft backend. */
async function iptablesDiff(ns: string, networks: readonly InstanceNetwork[], pool: string): Promise<string[]> {
  const [save, save6, table] = await Promise.all([iptablesSave(ns), ip6tablesSave(ns), nftTable(ns)]);
  const diffs = table === undefined ? [] : ["table inet rik-network of the nft backend is there with the iptables backend running"];
  diffs.push(...difference("instance rule", rulesMatching(save, "rik:"), networks.flatMap((n) => expectedRules(n))));
  const nodeRules = expectedNodeRules(pool);
  diffs.push(...difference("node rule", rulesMatching(save, "rik-network"), nodeRules));
  for (const chain of ["RIKLET", "RIKLET-POSTROUTING", "RIKLET-FORWARD", "RIKLET-INPUT"]) {
    const expected = nodeRules.filter((line) => line.startsWith(`-A ${chain} `));
    if (chainOrder(save, chain).join("\n") !== expected.join("\n")) diffs.push(`${chain} is not exactly, in order: ${expected.join(" | ")}`);
  }
  diffs.push(...difference("ip6tables rule", rulesMatching(save6, "rik"), ["-A PREROUTING -i rik+ -m comment --comment rik-network -j DROP"]));
  const strays = save
    .split("\n")
    .filter((line) => /^-A RIKLET(-[A-Z0-9-]+)? /.test(line) && !line.includes("rik:") && !line.includes("rik-network"));
  diffs.push(...strays.map((line) => `untagged rule in our chains: ${line}`));
  return diffs;
}
