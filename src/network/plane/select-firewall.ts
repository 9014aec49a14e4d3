import type { Logger } from "../../logger.js";
import { NetworkError } from "../model/network-error.js";
import { NOT_INSTALLED, type Firewall, type FirewallBackend, type FirewallBackendName } from "../firewall/firewall.js";

/** What `--firewall-backend` asks for: a backend, or "auto". */
export type FirewallBackendChoice = FirewallBackendName | "auto";

/** The backend `auto` prefers, and the one it falls back to. */
const AUTO_ORDER: readonly FirewallBackendName[] = ["nft", "iptables"];

export interface SelectedFirewall {
  readonly name: FirewallBackendName;
  readonly firewall: Firewall;
}

/**
 * The backend the node runs: the one asked for, which must be usable, or with "auto" the
 * first usable one of nft and iptables that nothing on the node defeats (a usable one that is
 * defeated only when no other is usable). Refuses to start, saying why and what to do, rather
 * than run without a firewall. What defeats the chosen backend is logged as a warning.
 */
export async function selectFirewall(
  choice: FirewallBackendChoice,
  backends: Readonly<Record<FirewallBackendName, FirewallBackend>>,
  logger: Logger,
): Promise<SelectedFirewall> {
  const candidates = choice === "auto" ? AUTO_ORDER : [choice];
  const reasons: string[] = [];
  const usable: { name: FirewallBackendName; conflicts: string[] }[] = [];
  for (const name of candidates) {
    const reason = await backends[name].unusable();
    if (reason !== undefined) {
      reasons.push(`${name}: ${reason}`);
      if (choice === "auto") logger.info("firewall backend not usable on this node, trying the next", { firewall_backend: name, reason });
      continue;
    }
    const conflicts = await backends[name].conflicts();
    usable.push({ name, conflicts });
    if (conflicts.length === 0) break;
    if (choice === "auto") logger.info("firewall backend defeated on this node, trying the next", { firewall_backend: name, conflicts });
  }
  const chosen = usable.find((candidate) => candidate.conflicts.length === 0) ?? usable[0];
  if (chosen === undefined) {
    throw new NetworkError(
      "failed-precondition",
      `no usable firewall backend for --firewall-backend ${choice} (${reasons.join("; ")}); install nftables (apt-get install -y nftables) or iptables, or choose the other backend`,
    );
  }
  if (chosen.conflicts.length > 0) {
    logger.warn("the firewall backend is defeated on this node: guests' forwarded traffic is dropped elsewhere whatever rik-network accepts; fix what is listed, or run with the other --firewall-backend", {
      firewall_backend: chosen.name,
      conflicts: chosen.conflicts,
    });
  }
  return { name: chosen.name, firewall: backends[chosen.name].create() };
}

/**
 * Removes what the backends not in use left on the node, once the one in use has reconciled:
 * its rules are in place first, so live guests keep their traffic through the move. A backend
 * that cannot run here cannot have left anything. Returns what was removed, per backend.
 */
export async function retireOtherBackends(
  inUse: FirewallBackendName,
  backends: Readonly<Record<FirewallBackendName, FirewallBackend>>,
  logger: Logger,
): Promise<Partial<Record<FirewallBackendName, Record<string, number>>>> {
  const removed: Partial<Record<FirewallBackendName, Record<string, number>>> = {};
  for (const name of Object.keys(backends) as FirewallBackendName[]) {
    if (name === inUse) continue;
    const reason = await backends[name].unusable();
    if (reason !== undefined) {
      // Not installed: it cannot have been used. Installed but broken: its state may be there, out of reach.
      if (!reason.startsWith(NOT_INSTALLED)) {
        logger.warn("cannot check what the other firewall backend may have left on the node; see docs/operations.md#resetting-a-node-by-hand", { firewall_backend: name, reason });
      }
      continue;
    }
    const firewall = backends[name].create();
    try {
      const actions = await firewall.removeAll();
      if (Object.keys(actions).length > 0) removed[name] = actions;
    } catch (error) {
      throw new NetworkError(
        "failed-precondition",
        `removing what the ${name} firewall backend left on the node failed (${(error as Error).message}); remove it by hand (docs/operations.md#resetting-a-node-by-hand), or start with --firewall-backend ${name}`,
        { cause: error },
      );
    } finally {
      await firewall.close();
    }
  }
  return removed;
}
