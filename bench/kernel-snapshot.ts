/**
 * The kernel state one scripted workload leaves, as normalized text, to show that a change
 * (a refactoring, a new backend) leaves the kernel exactly as before:
 *
 *   node --import tsx bench/kernel-snapshot.ts > before.txt   # at the old commit
 *   node --import tsx bench/kernel-snapshot.ts > after.txt    # at the new one
 *   diff before.txt after.txt
 *
 * The workload, on the real service (from source, --spare-taps 0 so that no background
 * refill makes the result depend on timing) in a throwaway namespace: four Functions with
 * TCP, UDP, hostIP-bound and no exposure, then one DESTROY, on the firewall backend the tests
 * use (RIK_TEST_FIREWALL_BACKEND, nft when unset). What is printed: iptables-save and
 * ip6tables-save, `nft list table inet rik-network` (when it exists), `ip -d -j link` and `ip -j
 * addr` without what the kernel picks anew every run (indexes, MACs, counters), and each TAP's
 * route_localnet and IPv6 sysctls.
 */
import { findNft } from "../src/network/firewall/nftables/nft-firewall.js";
import { ip6tablesSave, ipAddrs, iptablesSave, ipLinks } from "../test/helpers/kernel-state.js";
import { execIn, Topology } from "../test/helpers/netns.js";
import { startService } from "../test/helpers/service-process.js";
import { functionDefinition, WorkloadClient } from "../test/helpers/workload-client.js";

const cleanups: (() => unknown)[] = [];
const host = { teardown: (fn: () => unknown) => void cleanups.push(fn) };

/**
 * Drops what the kernel picks anew on every run (indexes, random MACs and the link-local
 * addresses made from them) or sets on its own time (operstate and carrier, which linkwatch
 * updates after the fact; the "tentative" of duplicate address detection).
 */
function stable(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((item) => item !== "NO-CARRIER" && item !== "LOWER_UP").map(stable);
  if (typeof value !== "object" || value === null) return value;
  const volatile = new Set(["ifindex", "link_index", "address", "broadcast", "link_netnsid", "operstate", "tentative"]);
  const entries = Object.entries(value).filter(([key]) => !volatile.has(key));
  const linkLocal = entries.some(([key, inner]) => key === "scope" && inner === "link");
  return Object.fromEntries(entries.map(([key, inner]) => [key, key === "local" && linkLocal ? "(link-local)" : stable(inner)]));
}

async function main(): Promise<void> {
  const topology = await Topology.create({ teardown: host });
  const service = await startService({ nodeNs: topology.node, extraArgs: ["--spare-taps", "0", "--resync-interval", "0"], readyTimeoutMs: 60_000 });
  cleanups.push(() => service.stop());
  const client = new WorkloadClient(service.address);
  cleanups.push(() => client.close());

  const networks = [
    await client.create("snap-a", functionDefinition({ exposure: { port: 8080, targetPort: 3000 } })),
    await client.create(
      "snap-b",
      functionDefinition({ exposure: [{ port: 8081, targetPort: 3000 }, { port: 5353, targetPort: 53, protocol: "UDP", hostIP: topology.nodeIp }] }),
    ),
    await client.create("snap-c", functionDefinition()),
    await client.create("snap-d", functionDefinition({ exposure: { port: 9000, targetPort: 9000 } })),
  ];
  await client.destroy("snap-d");

  const [save, save6, links, addrs, table] = await Promise.all([
    iptablesSave(topology.node),
    ip6tablesSave(topology.node),
    ipLinks(topology.node),
    ipAddrs(topology.node),
    execIn(topology.node, findNft(), ["list", "table", "inet", "rik-network"], { reject: false }),
  ]);
  const sysctls: string[] = [];
  for (const { network } of networks.slice(0, 3)) {
    const tap = network.value!.tapName;
    const keys = [`ipv4/conf/${tap}/route_localnet`, `ipv6/conf/${tap}/disable_ipv6`, `ipv6/conf/${tap}/accept_ra`, `ipv6/conf/${tap}/addr_gen_mode`];
    // Read inside the namespace: /proc/sys/net shows the reader's own.
    const { stdout } = await execIn(topology.node, "cat", keys.map((key) => `/proc/sys/net/${key}`));
    sysctls.push(`${tap} ${String(stdout).trim().split("\n").map((value, at) => `${keys[at]!.split("/").at(-1)}=${value}`).join(" ")}`);
  }
  const replies = networks.map((reply) => JSON.stringify(reply.network.value, (_key, value: unknown) => (typeof value === "bigint" ? String(value) : value)));
  process.stdout.write(
    [
      "# replies",
      ...replies,
      "# iptables-save",
      save,
      "# ip6tables-save",
      save6,
      "# nft list table inet rik-network",
      table.exitCode === 0 ? String(table.stdout) : "(no such table)",
      "# ip -d -j link",
      JSON.stringify(stable(links), null, 1),
      "# ip -j addr",
      JSON.stringify(stable(addrs), null, 1),
      "# sysctls",
      ...sysctls,
      "",
    ].join("\n"),
  );
}

try {
  await main();
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
}
