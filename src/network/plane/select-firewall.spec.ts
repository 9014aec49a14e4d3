import test from "ava";
import { captureLogger } from "../../../test/helpers/capture-logger.js";
import type { Firewall, FirewallBackend, FirewallBackendName } from "../firewall/firewall.js";
import { NetworkError } from "../model/network-error.js";
import { retireOtherBackends, selectFirewall } from "./select-firewall.js";

interface FakeOptions {
  readonly unusable?: string;
  readonly conflicts?: string[];
  readonly removeAll?: () => Promise<Record<string, number>>;
}

function fake(name: string, options: FakeOptions, events: string[]): FirewallBackend {
  return {
    unusable: async () => options.unusable,
    conflicts: async () => options.conflicts ?? [],
    create: (): Firewall => {
      events.push(`create ${name}`);
      return {
        prefetch: () => undefined,
        add: async () => undefined,
        remove: async () => undefined,
        reconcile: async () => ({}),
        removeAll: options.removeAll ?? (async () => ({})),
        close: async () => void events.push(`close ${name}`),
      };
    },
  };
}

function backends(nft: FakeOptions, iptables: FakeOptions, events: string[] = []): Record<FirewallBackendName, FirewallBackend> {
  return { nft: fake("nft", nft, events), iptables: fake("iptables", iptables, events) };
}

test("auto takes nft when it works and nothing defeats it", async (t) => {
  const { logger, lines } = captureLogger();
  t.is((await selectFirewall("auto", backends({}, {}), logger)).name, "nft");
  t.deepEqual(lines, []);
});

test("auto falls back to iptables when nft is unusable, and says why", async (t) => {
  const { logger, lines } = captureLogger();
  t.is((await selectFirewall("auto", backends({ unusable: "cannot run /usr/sbin/nft: ENOENT" }, {}), logger)).name, "iptables");
  t.like(lines[0], { level: "info", firewall_backend: "nft", reason: "cannot run /usr/sbin/nft: ENOENT" });
});

test("auto takes iptables when another table would defeat nft (a forward drop policy)", async (t) => {
  const { logger, lines } = captureLogger();
  const events: string[] = [];
  const selected = await selectFirewall("auto", backends({ conflicts: ["ip filter FORWARD (policy drop)"] }, {}, events), logger);
  t.is(selected.name, "iptables");
  t.deepEqual(events, ["create iptables"]);
  t.like(lines[0], { level: "info", message: "firewall backend defeated on this node, trying the next", conflicts: ["ip filter FORWARD (policy drop)"] });
});

test("auto keeps a defeated nft when iptables cannot run, with a warning; so does an explicit nft", async (t) => {
  for (const [choice, iptables] of [["auto", { unusable: "cannot run iptables-save" }], ["nft", {}]] as const) {
    const { logger, lines } = captureLogger();
    t.is((await selectFirewall(choice, backends({ conflicts: ["ip filter FORWARD (policy drop)"] }, iptables), logger)).name, "nft");
    t.like(lines.at(-1), { level: "warn", firewall_backend: "nft", conflicts: ["ip filter FORWARD (policy drop)"] });
  }
});

test("an explicit backend that cannot work refuses the start, saying why and what to do", async (t) => {
  const { logger } = captureLogger();
  const error = await t.throwsAsync(selectFirewall("nft", backends({ unusable: "nft is version 0.9.8, older than 1.0" }, {}), logger));
  t.true(error instanceof NetworkError);
  t.is((error as NetworkError).code, "failed-precondition");
  t.regex(error!.message, /--firewall-backend nft \(nft: nft is version 0\.9\.8, older than 1\.0\); install nftables/);
});

test("retiring: the other backend's state removed and reported, its firewall closed; nothing reported when there was nothing", async (t) => {
  const { logger } = captureLogger();
  const events: string[] = [];
  const removed = await retireOtherBackends("nft", backends({}, { removeAll: async () => ({ chain_removed: 132, rule_removed: 8 }) }, events), logger);
  t.deepEqual(removed, { iptables: { chain_removed: 132, rule_removed: 8 } });
  t.deepEqual(events, ["create iptables", "close iptables"]);
  t.deepEqual(await retireOtherBackends("iptables", backends({}, {}), logger), {});
});

test("retiring: a backend that is not installed is skipped quietly; one installed but broken is warned of", async (t) => {
  const { logger, lines } = captureLogger();
  t.deepEqual(await retireOtherBackends("nft", backends({}, { unusable: "not installed: iptables-save: spawn iptables-save ENOENT" }), logger), {});
  t.deepEqual(lines, []);
  t.deepEqual(await retireOtherBackends("iptables", backends({ unusable: "the kernel cannot hold the table: ..." }, {}), logger), {});
  t.like(lines[0], { level: "warn", firewall_backend: "nft" });
  t.deepEqual(await retireOtherBackends("iptables", backends({ unusable: "cannot run /usr/sbin/nft: spawn EACCES" }, {}), logger), {});
  t.like(lines[1], { level: "warn", firewall_backend: "nft", reason: "cannot run /usr/sbin/nft: spawn EACCES" });
});

test("retiring: a removal that fails refuses the start, naming the backend and the way out; the firewall is closed all the same", async (t) => {
  const { logger } = captureLogger();
  const events: string[] = [];
  const failing = backends({}, { removeAll: async () => Promise.reject(new Error("iptables-restore failed: line 3")) }, events);
  const error = await t.throwsAsync(retireOtherBackends("nft", failing, logger));
  t.is((error as NetworkError).code, "failed-precondition");
  t.regex(error!.message, /removing what the iptables firewall backend left on the node failed \(iptables-restore failed: line 3\); remove it by hand .*or start with --firewall-backend iptables/);
  t.deepEqual(events, ["create iptables", "close iptables"]);
});
