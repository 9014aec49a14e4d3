import type { Logger } from "../../../logger.js";
import { NOT_INSTALLED, type Firewall, type InstanceFirewall, type NodeFirewallPolicy } from "../firewall.js";
import { existsSync } from "node:fs";
import type { CommandLauncher } from "../../kernel/command-launcher.js";
import type { NetworkObserver } from "../../model/network-observer.js";
import { runCommand } from "../../kernel/run-command.js";
import { Iptables, type IptablesOptions } from "./iptables.js";
import {
  instanceRules,
  nodeChainRules,
  nodeChains,
  nodeIpv6Rules,
  nodeJumpRules,
  parseIptablesSave,
  renderRestore,
  rulesOwnedBy,
} from "./iptables-rules.js";
import { RestoreBatcher } from "./restore-batcher.js";
import { planRules, ruleActions } from "./rule-plan.js";

export interface IptablesFirewallOptions {
  readonly policy: NodeFirewallPolicy;
  readonly iptables: Iptables;
  /** ip6tables of the same backend; undefined when the kernel has no IPv6 (nothing to close then). */
  readonly ip6tables: Iptables | undefined;
  readonly logger: Logger;
}

/** What the composition root gives the iptables backend to build itself from. */
export interface IptablesBackendOptions {
  readonly policy: NodeFirewallPolicy;
  /** The binaries, of one backend (nft or legacy): iptables-restore and -save, and their IPv6 twins. */
  readonly iptables?: IptablesOptions;
  readonly ip6tables?: { readonly restoreCommand: string; readonly saveCommand: string };
  /** The co-process that runs the commands of the hot path; its giver closes it. */
  readonly launcher: CommandLauncher;
  readonly observer?: NetworkObserver;
  readonly logger: Logger;
}

/**
 * The firewall as iptables chains (see iptables-rules.ts): node-wide chains set up and kept
 * whole by reconcile, and a DNAT per exposed port in the shard chain of its host port. An
 * instance's rules carry its id as their comment, which is how reconcile and a DESTROY after
 * drift find them.
 */
export class IptablesFirewall implements Firewall {
  private readonly options: IptablesFirewallOptions;
  private readonly rules: RestoreBatcher;
  /** What prefetch started reading, for the reconcile that follows it at start. */
  private prefetched: { readonly saved: Promise<string>; readonly saved6: Promise<string> | undefined } | undefined;

  /**
   * The backend with its processes: iptables-restore through a long-lived session (nf_tables)
   * or the launcher; ip6tables, rarely used (reconciles only), exec'd through the launcher,
   * and only when the kernel has IPv6.
   */
  static create(options: IptablesBackendOptions): IptablesFirewall {
    const { launcher, observer } = options;
    const observed = observer === undefined ? {} : { observer };
    const iptables = new Iptables({ ...options.iptables, launcher, ...observed });
    const ip6tables = existsSync("/proc/sys/net/ipv6")
      ? new Iptables({ restoreCommand: "ip6tables-restore", saveCommand: "ip6tables-save", ...options.ip6tables, launcher, session: false, ...observed })
      : undefined;
    return new IptablesFirewall({ policy: options.policy, iptables, ip6tables, logger: options.logger });
  }

  /**
   * Why this backend cannot work on this node, or undefined when it can: its iptables-save
   * must run. Equivalent to: `iptables-save --version`.
   */
  static async unusable(iptables: IptablesOptions = {}): Promise<string | undefined> {
    const command = iptables.saveCommand ?? "iptables-save";
    try {
      const result = await runCommand(command, ["--version"]);
      return result.exitCode === 0 ? undefined : `${command} --version exited with ${result.exitCode}: ${result.stderr.trim()}`;
    } catch (error) {
      return `${(error as NodeJS.ErrnoException).code === "ENOENT" ? NOT_INSTALLED : "cannot run"} ${command}: ${(error as Error).message}`;
    }
  }

  constructor(options: IptablesFirewallOptions) {
    this.options = options;
    this.rules = new RestoreBatcher(
      (text) => options.iptables.restore(text),
      () => options.iptables.save(),
    );
  }

  /**
   * Equivalent to: `iptables-save; ip6tables-save`, started now. They run in processes of their
   * own, so they overlap the node setup and the store load that come before the start reconcile.
   */
  prefetch(): void {
    const saved = this.options.iptables.save();
    saved.catch(() => undefined); // awaited by the start reconcile; the start may fail first
    const saved6 = this.options.ip6tables?.save();
    saved6?.catch(() => undefined); // likewise
    this.prefetched = { saved, saved6 };
  }

  add(instance: InstanceFirewall): Promise<void> {
    return this.rules.submit({ append: instanceRules(instance) });
  }

  async remove(instance: InstanceFirewall): Promise<void> {
    try {
      await this.rules.submit({ delete: instanceRules(instance) });
    } catch (error) {
      // Some rule is already gone (drift, or a create cut short): delete what is left of ours, by its comment.
      this.options.logger.warn("rule batch delete failed, deleting by comment", {
        instance_id: instance.instanceId,
        error: (error as Error).message,
      });
      const saved = parseIptablesSave(await this.options.iptables.save());
      await this.rules.submit({ delete: rulesOwnedBy(saved, instance.instanceId) });
    }
  }

  async reconcile(instances: readonly InstanceFirewall[]): Promise<Record<string, number>> {
    const prefetched = this.prefetched;
    this.prefetched = undefined;
    const { policy } = this.options;
    const saved = parseIptablesSave(await (prefetched?.saved ?? this.options.iptables.save()));
    const rules = planRules(
      {
        chains: nodeChains(),
        jumps: nodeJumpRules(policy),
        fixed: nodeChainRules(policy),
        rules: instances.flatMap((instance) => instanceRules(instance)),
      },
      saved,
    );
    await this.rules.submit(rules);
    const ipv6Rules = await this.reconcileIpv6Rules(prefetched?.saved6);
    return { ...ruleActions(rules), ...(ipv6Rules > 0 ? { ipv6_rule_repaired: ipv6Rules } : {}) };
  }

  /**
   * Removes every rule and chain of ours, IPv4 and IPv6: the plan for wanting nothing, which
   * deletes what our comments tag and the chains named like ours.
   */
  async removeAll(): Promise<Record<string, number>> {
    const nothing = { chains: [], jumps: [], fixed: [], rules: [] };
    const rules = planRules(nothing, parseIptablesSave(await this.options.iptables.save()));
    if (rules.delete.length + rules.deleteChains.length > 0) await this.rules.submit(rules);
    let ipv6Removed = 0;
    const { ip6tables } = this.options;
    if (ip6tables !== undefined) {
      const rules6 = planRules(nothing, parseIptablesSave(await ip6tables.save()));
      if (rules6.delete.length > 0) await ip6tables.restore(renderRestore(rules6));
      ipv6Removed = rules6.delete.length;
    }
    return { ...ruleActions(rules), ...(ipv6Removed > 0 ? { ipv6_rule_removed: ipv6Removed } : {}) };
  }

  /** Closes iptables' processes (not the launcher, which is its giver's). */
  close(): Promise<void> {
    return this.options.iptables.close();
  }

  /**
   * Makes ip6tables hold exactly nodeIpv6Rules (missing ones inserted, duplicates and stale
   * rules of ours removed), with the same planner as the IPv4 rules. Returns how many
   * changes that took. A failure is logged, not thrown: the rule backs up the TAPs' own IPv6
   * settings, and a node whose ip6tables cannot work (no raw table) must still get its IPv4
   * repairs; the next reconcile tries again.
   */
  private async reconcileIpv6Rules(prefetched: Promise<string> | undefined): Promise<number> {
    const { ip6tables } = this.options;
    if (ip6tables === undefined) return 0;
    try {
      const saved = parseIptablesSave(await (prefetched ?? ip6tables.save()));
      const rules = planRules({ chains: [], jumps: nodeIpv6Rules(), fixed: [], rules: [] }, saved);
      await ip6tables.restore(renderRestore(rules));
      return rules.insert.length + rules.delete.length;
    } catch (error) {
      this.options.logger.error("cannot set the ip6tables drop of guest traffic; the TAPs still have IPv6 off, and the next reconcile tries again", {
        error: (error as Error).message,
      });
      return 0;
    }
  }
}
