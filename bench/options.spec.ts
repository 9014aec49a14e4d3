// Unit specs of the bench's command line (no root, no kernel).
import test from "ava";
import { OptionsError, parseBenchArgs, serviceArgsFor } from "./options.js";

test("defaults: sizes 0,1000,5000, both firewall backends with nft judged, iptables-nft binaries, 60 s of churn", (t) => {
  const full = parseBenchArgs([]);
  t.deepEqual(full.sizes, [0, 1000, 5000]);
  t.is(full.samples, 100);
  t.deepEqual(full.firewalls, ["nft", "iptables"]);
  t.is(full.iptablesBackend, "nft");
  t.is(full.churnSeconds, 60);
  t.is(full.churnInFlight, 8);
  t.is(full.datapathSamples, 2000);
  t.is(full.baselineCapSeconds, 300);
  t.is(full.out, "bench-results.json");
});

test("--quick shortens every phase; explicit options win", (t) => {
  const quick = parseBenchArgs(["--quick", "--iptables-backend", "legacy", "--out", "x.json"]);
  t.deepEqual(quick.sizes, [0, 500]);
  t.is(quick.samples, 30);
  t.is(quick.churnSeconds, 10);
  t.is(quick.datapathSamples, 300);
  t.is(quick.iptablesBackend, "legacy");
  t.is(parseBenchArgs(["--quick", "--churn-seconds", "0"]).churnSeconds, 0);
  t.deepEqual(parseBenchArgs(["--sizes", "5000,0"]).sizes, [0, 5000]);
  t.deepEqual(parseBenchArgs(["--firewall", "iptables,nft"]).firewalls, ["iptables", "nft"]);
  t.deepEqual(parseBenchArgs(["--firewall", "iptables"]).firewalls, ["iptables"]);
});

test("refusals: the old --backend says what replaced it; bad lists, sizes and pools", (t) => {
  t.throws(() => parseBenchArgs(["--backend", "legacy"]), { instanceOf: OptionsError, message: /--firewall .* --iptables-backend/ });
  t.throws(() => parseBenchArgs(["--iptables-backend", "ipfw"]), { instanceOf: OptionsError });
  t.throws(() => parseBenchArgs(["--firewall", "nft,bpf"]), { instanceOf: OptionsError, message: /nft, iptables/ });
  t.throws(() => parseBenchArgs(["--firewall", "nft,nft"]), { instanceOf: OptionsError });
  t.throws(() => parseBenchArgs(["--sizes", "0,0"]), { instanceOf: OptionsError });
  t.throws(() => parseBenchArgs(["--churn-in-flight", "65"]), { instanceOf: OptionsError });
  t.throws(() => parseBenchArgs(["--pool", "10.0.0.0/24", "--sizes", "100"]), { instanceOf: OptionsError });
  t.throws(() => parseBenchArgs(["--bogus"]), { instanceOf: OptionsError });
});

test("serviceArgsFor: --firewall-backend, and the iptables binaries for the iptables backend only", (t) => {
  t.deepEqual(serviceArgsFor("nft", "nft", true), ["--firewall-backend", "nft"]);
  t.deepEqual(serviceArgsFor("iptables", "legacy", true), ["--firewall-backend", "iptables", "--iptables-backend", "legacy"]);
  // A service from before the nft backend: iptables only, and no flag it would reject.
  t.deepEqual(serviceArgsFor("iptables", "nft", false), ["--iptables-backend", "nft"]);
  t.throws(() => serviceArgsFor("nft", "nft", false), { instanceOf: OptionsError });
});
