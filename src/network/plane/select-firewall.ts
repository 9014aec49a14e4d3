import type { Logger } from "../../logger.js";
import { NetworkError } from "../model/network-error.js";
import type { Firewall, FirewallBackend, FirewallBackendName } from "../firewall/firewall.js";

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
 * first usable one of nft and iptables. Refuses to start, saying why and what to do, rather
 * than run without a firewall.
 */
export async function selectFirewall(
  choice: FirewallBackendChoice,
  backends: Readonly<Record<FirewallBackendName, FirewallBackend>>,
  logger: Logger,
): Promise<SelectedFirewall> {
  const candidates = choice === "auto" ? AUTO_ORDER : [choice];
  const reasons: string[] = [];
  for (const name of candidates) {
    const reason = await backends[name].unusable();
    if (reason === undefined) return { name, firewall: backends[name].create() };
    reasons.push(`${name}: ${reason}`);
    if (choice === "auto") logger.info("firewall backend not usable on this node, trying the next", { firewall_backend: name, reason });
  }
  throw new NetworkError(
    "failed-precondition",
    `no usable firewall backend for --firewall-backend ${choice} (${reasons.join("; ")}); install nftables (apt-get install -y nftables) or iptables, or choose the other backend`,
  );
}

/**
 * Removes what the backends not in use left on the node, once the one in use has reconciled:
 * its rules are in place first, so live guests keep their traffic through the move. A backend
 * that cannot run here cannot have left anything. Returns what was removed, per backend.
 */
export async function retireOtherBackends(
  inUse: FirewallBackendName,
  backends: Readonly<Record<FirewallBackendName, FirewallBackend>>,
): Promise<Partial<Record<FirewallBackendName, Record<string, number>>>> {
  const removed: Partial<Record<FirewallBackendName, Record<string, number>>> = {};
  for (const name of Object.keys(backends) as FirewallBackendName[]) {
    if (name === inUse || (await backends[name].unusable()) !== undefined) continue;
    const firewall = backends[name].create();
    try {
      const actions = await firewall.removeAll();
      if (Object.keys(actions).length > 0) removed[name] = actions;
    } finally {
      await firewall.close();
    }
  }
  return removed;
}
