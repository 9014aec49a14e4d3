/**
 * The firewall backend the integration tests run the service with: RIK_TEST_FIREWALL_BACKEND,
 * nft when unset. `npm test` runs the integration tests once per backend (scripts/test), so
 * every behavior is checked against both; assertions on kernel state branch on this.
 */
export type TestFirewallBackend = "nft" | "iptables";

function fromEnv(value: string | undefined): TestFirewallBackend {
  if (value === undefined || value === "" || value === "nft") return "nft";
  if (value === "iptables") return "iptables";
  throw new Error(`RIK_TEST_FIREWALL_BACKEND must be nft or iptables, got "${value}"`);
}

export const TEST_FIREWALL_BACKEND: TestFirewallBackend = fromEnv(process.env["RIK_TEST_FIREWALL_BACKEND"]);
