import { accessSync, constants } from "node:fs";
import path from "node:path";
import { setImmediate as yieldToEvents } from "node:timers/promises";
import type { Logger } from "../../../logger.js";
import { runCommand } from "../../kernel/run-command.js";
import { KernelError } from "../../kernel/kernel-error.js";
import type { NetworkObserver } from "../../model/network-observer.js";
import { NOT_INSTALLED, type Firewall, type InstanceFirewall, type NodeFirewallPolicy } from "../firewall.js";
import { Libnftables } from "./libnftables.js";
import { parseTableListing, type ListedTable } from "./nft-listing.js";
import { chunks, planTable, renderDeleteTable } from "./nft-plan.js";
import { instanceElements, nodeTable, NFT_FAMILY, NFT_TABLE, renderAddElements, renderDeleteElements, TABLE_REF } from "./nft-rules.js";

/** A table of its own for the start's check that the kernel takes ours; deleted at once. */
const PROBE_TABLE_REF = "inet rik-network-probe";

/** The oldest nft whose syntax and JSON listing this backend is written for. */
export const MIN_NFT_VERSION: readonly [number, number] = [1, 0];

export interface NftBackendOptions {
  readonly policy: NodeFirewallPolicy;
  readonly logger: Logger;
  readonly observer?: NetworkObserver;
  /** The nft binary, for listings (default: findNft). */
  readonly nftCommand?: string;
}

/** Where Debian's nftables package puts nft, searched first. */
const SYSTEM_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/**
 * The nftables `nft` binary: the first executable `nft` in the system directories, then in
 * PATH. Directories under node_modules are skipped: npm puts node_modules/.bin first in the
 * PATH of `npm start` and `npm test`, and a dependency of the test runner installs an `nft`
 * of its own there (@vercel/nft, a file tracer). Returns "nft" when there is none, so that
 * running it fails with ENOENT.
 */
export function findNft(pathVariable = process.env["PATH"] ?? ""): string {
  const dirs = [...SYSTEM_DIRS, ...pathVariable.split(":").filter((dir) => dir !== "" && !dir.split(path.sep).includes("node_modules"))];
  for (const dir of dirs) {
    const candidate = path.join(dir, "nft");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return "nft";
}

/** `nftables v1.0.6 (Lester Gooch #5)` as [1, 0, 6]; undefined when the text has no version. */
export function parseNftVersion(text: string): number[] | undefined {
  const match = /\bv(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return match === null ? undefined : [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

export function isSupportedVersion(version: readonly number[]): boolean {
  const [major = 0, minor = 0] = version;
  return major > MIN_NFT_VERSION[0] || (major === MIN_NFT_VERSION[0] && minor >= MIN_NFT_VERSION[1]);
}

/** A forward-hook base chain of another table whose policy drops: it drops guest traffic our accept let through. */
export function foreignForwardDrops(listing: string): string[] {
  const parsed = JSON.parse(listing) as { nftables?: { chain?: { family?: string; table?: string; name?: string; hook?: string; policy?: string } }[] };
  return (parsed.nftables ?? [])
    .map((entry) => entry.chain)
    .filter((chain) => chain !== undefined && chain.hook === "forward" && chain.policy === "drop" && !(chain.family === "inet" && chain.table === NFT_TABLE))
    .map((chain) => `${chain!.family} ${chain!.table} ${chain!.name}`);
}

/**
 * The firewall as one nftables table of our own, `table inet rik-network` (nft-rules.ts):
 * node-wide chains and sets that reconcile keeps whole, and every instance's DNATs as elements
 * of two maps, so that a CREATE adds elements and a DESTROY deletes them, each in one
 * transaction whose cost does not grow with the number of instances. The table is ours whole:
 * no chain, set or map of someone else's in it survives a reconcile, and nothing outside it is
 * ever touched.
 */
export class NftFirewall implements Firewall {
  private readonly options: NftBackendOptions;
  private readonly nft: Libnftables;
  private readonly nftCommand: string;
  private prefetched: Promise<ListedTable | undefined> | undefined;

  /**
   * Why this backend cannot work on this node, or undefined when it can: `nft` 1.0 or later
   * must run and list as JSON, libnftables must load, and the kernel must take the table this
   * policy needs (every expression it uses: fib, NAT, reject, ct...). The last is tried on a
   * scratch table, made then deleted, so that a kernel without one of them fails here, where
   * `auto` can still take the other backend, and not at the first reconcile.
   */
  static async unusable(policy: NodeFirewallPolicy, nftCommand = findNft()): Promise<string | undefined> {
    let versionText: string;
    try {
      const result = await runCommand(nftCommand, ["--version"]);
      if (result.exitCode !== 0) return `${nftCommand} --version exited with ${result.exitCode}: ${result.stderr.trim()}`;
      versionText = result.stdout;
      const json = await runCommand(nftCommand, ["-j", "list", "tables"]);
      if (json.exitCode !== 0 || !json.stdout.trimStart().startsWith("{")) return `${nftCommand} -j cannot list as JSON: ${json.stderr.trim() || json.stdout.trim()}`;
    } catch (error) {
      return `${(error as NodeJS.ErrnoException).code === "ENOENT" ? NOT_INSTALLED : "cannot run"} ${nftCommand}: ${(error as Error).message}`;
    }
    const version = parseNftVersion(versionText);
    if (version === undefined) return `cannot read a version in "${versionText.trim()}"`;
    if (!isSupportedVersion(version)) return `${nftCommand} is version ${version.join(".")}, older than ${MIN_NFT_VERSION.join(".")}`;
    let nft: Libnftables;
    try {
      nft = Libnftables.open();
    } catch (error) {
      return `libnftables cannot be loaded: ${(error as Error).message}`;
    }
    try {
      const setup = planTable(nodeTable(policy), [], undefined).setup.replace(/inet rik-network(?=[ \n])/g, PROBE_TABLE_REF);
      nft.run(`making the scratch table ${PROBE_TABLE_REF}`, setup);
      nft.run(`deleting the scratch table ${PROBE_TABLE_REF}`, `delete table ${PROBE_TABLE_REF}\n`);
    } catch (error) {
      return `the kernel cannot hold the table: ${(error as Error).message}`;
    } finally {
      nft.close();
    }
    return undefined;
  }

  /**
   * What would defeat this backend on this node: another table whose forward hook drops by
   * default (iptables' FORWARD after `iptables -P FORWARD DROP`, Docker's, a firewalld zone),
   * which drops guests' forwarded traffic whatever our table accepts, nftables running every
   * table's chains at a hook. Seen through `nft -j list chains` (every nftables table, those of
   * iptables-nft included) and `iptables-legacy-save -t filter` (legacy's, which nft cannot see).
   */
  static async conflicts(nftCommand = findNft()): Promise<string[]> {
    const found: string[] = [];
    const chains = await runCommand(nftCommand, ["-j", "list", "chains"]).catch(() => undefined);
    if (chains?.exitCode === 0) found.push(...foreignForwardDrops(chains.stdout));
    const legacy = await runCommand("iptables-legacy-save", ["-t", "filter"]).catch(() => undefined);
    if (legacy?.exitCode === 0 && /^:FORWARD DROP\b/m.test(legacy.stdout)) found.push("iptables-legacy filter FORWARD");
    return found.map((chain) => `${chain} (policy drop)`);
  }

  static create(options: NftBackendOptions): NftFirewall {
    return new NftFirewall(options, Libnftables.open());
  }

  private constructor(options: NftBackendOptions, nft: Libnftables) {
    this.options = options;
    this.nft = nft;
    this.nftCommand = options.nftCommand ?? findNft();
  }

  /** Equivalent to: `nft -j list table inet rik-network`, started now so that it overlaps the start's other reads. */
  prefetch(): void {
    const listing = this.list();
    listing.catch(() => undefined); // awaited by the start reconcile; the start may fail first
    this.prefetched = listing;
  }

  /** Equivalent to: `nft add element inet rik-network ports { tcp . 8080 : 10.220.0.2 . 3000 }` (and bound_ports), one transaction. */
  async add(instance: InstanceFirewall): Promise<void> {
    const text = renderAddElements(instanceElements(instance));
    if (text !== "") this.transaction(`adding the DNATs of instance "${instance.instanceId}"`, text);
  }

  /**
   * Equivalent to: `nft delete element inet rik-network ports { tcp . 8080 }` (and bound_ports),
   * one transaction. nft 1.0.6 has no `destroy`, and a delete of a missing element fails the
   * whole transaction, so after drift (or a create cut short) each element is deleted on its
   * own, missing ones skipped.
   */
  async remove(instance: InstanceFirewall): Promise<void> {
    const elements = instanceElements(instance);
    if (elements.length === 0) return;
    try {
      this.transaction(`removing the DNATs of instance "${instance.instanceId}"`, renderDeleteElements(elements));
      return;
    } catch (error) {
      if (!(error instanceof KernelError) || error.errno !== "ENOENT") throw error;
    }
    for (const element of elements) {
      try {
        this.transaction(`removing a DNAT of instance "${instance.instanceId}"`, renderDeleteElements([element]));
      } catch (error) {
        if (!(error instanceof KernelError) || error.errno !== "ENOENT") throw error;
      }
    }
  }

  async reconcile(instances: readonly InstanceFirewall[]): Promise<Record<string, number>> {
    const prefetched = this.prefetched;
    this.prefetched = undefined;
    const listed = await (prefetched ?? this.list());
    const plan = planTable(
      nodeTable(this.options.policy),
      instances.flatMap((instance) => instanceElements(instance)),
      listed,
    );
    if (plan.setup !== "") this.transaction(`setting up ${TABLE_REF}`, plan.setup);
    for (const slice of chunks(plan.removeElements)) {
      await yieldToEvents();
      this.transaction(`removing ${slice.length} stale DNATs`, renderDeleteElements(slice));
    }
    for (const slice of chunks(plan.addElements)) {
      await yieldToEvents();
      this.transaction(`adding ${slice.length} DNATs`, renderAddElements(slice));
    }
    return { ...plan.actions };
  }

  /** Equivalent to: `nft delete table inet rik-network`, when the table exists. */
  async removeAll(): Promise<Record<string, number>> {
    if ((await this.list()) === undefined) return {};
    this.transaction(`deleting ${TABLE_REF}`, renderDeleteTable());
    return { table_removed: 1 };
  }

  async close(): Promise<void> {
    this.nft.close();
  }

  private transaction(operation: string, commands: string): void {
    const startedAt = performance.now();
    try {
      this.nft.run(operation, commands);
      this.options.observer?.nftTransaction?.((performance.now() - startedAt) / 1000, true);
    } catch (error) {
      this.options.observer?.nftTransaction?.((performance.now() - startedAt) / 1000, false);
      throw error;
    }
  }

  /**
   * Our table as `nft -j` lists it, or undefined when it does not exist. In a process of its
   * own: printing thousands of elements as JSON takes libnftables long enough to matter on
   * the event loop.
   */
  private async list(): Promise<ListedTable | undefined> {
    const result = await runCommand(this.nftCommand, ["-j", "list", "table", NFT_FAMILY, NFT_TABLE]);
    if (result.exitCode !== 0) {
      if (result.stderr.includes("No such file or directory")) return undefined;
      throw new KernelError(`${this.nftCommand} -j list table ${TABLE_REF}`, undefined, { detail: result.stderr.trim() || `exit code ${result.exitCode}` });
    }
    return parseTableListing(result.stdout);
  }
}
