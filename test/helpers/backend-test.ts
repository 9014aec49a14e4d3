/**
 * For a test that only concerns one firewall backend (a binary or wrapper of that backend, or
 * a behavior that differs by design): it is registered only in the pass whose service runs
 * that backend, so the other pass neither runs it nor counts it. Say why where it is used.
 * Not in firewall-backend.ts, which the bench imports, outside ava.
 */
import test, { type ExecutionContext } from "ava";
import { TEST_FIREWALL_BACKEND, type TestFirewallBackend } from "./firewall-backend.js";

export function testOnBackend(backend: TestFirewallBackend, title: string, implementation: (t: ExecutionContext) => Promise<void> | void): void {
  if (TEST_FIREWALL_BACKEND === backend) test(`${backend} backend: ${title}`, implementation);
}
