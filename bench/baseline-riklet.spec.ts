import test from "ava";
import {
  binariesFor,
  concurrentScript,
  createSteps,
  destroySteps,
  epochMs,
  execCount,
  pairsScript,
  parseScriptOutput,
  renderStep,
} from "./baseline-riklet.js";
import { makeInstances, planInstances } from "./instances.js";
import { shellQuote, splitSpec } from "./shell.js";

const [instance] = makeInstances("10.220.0.0/16", { prefix: "seq", count: 1, firstSlot: 5, firstHostPort: 2000 });
const nft = binariesFor("nft");

test("the baseline instance gets rik-network's TAP name and the /30 of its slot", (t) => {
  t.regex(instance!.tapName, /^rik[a-z2-7]{12}$/);
  t.is(instance!.hostIp, "10.220.0.21");
  t.is(instance!.guestIp, "10.220.0.22");
});

test("create is riklet's 15 execs: 3 ip, then -L table, -L chain, -C, -A per rule", (t) => {
  const steps = createSteps(instance!, nft);
  t.is(execCount(steps), 15);
  t.deepEqual(steps[0], { kind: "run", argv: ["ip", "tuntap", "add", instance!.tapName, "mode", "tap"] });
  t.deepEqual(steps[3], { kind: "list", argv: ["iptables", "-w", "-t", "nat", "-L", "-n"] });
  t.deepEqual(steps[4], { kind: "list", argv: ["iptables", "-w", "-t", "nat", "-L", "RIKLET", "-n"] });
  const dnat = steps[5]!;
  t.is(dnat.kind, "unless-present");
  if (dnat.kind !== "unless-present") return;
  t.deepEqual(dnat.change, [
    "iptables", "-w", "-t", "nat", "-A", "RIKLET", "-p", "tcp", "-m", "tcp", "--dport", "2000",
    "-m", "comment", "--comment", "rik:seq-0", "-j", "DNAT", "--to-destination", "10.220.0.22:8080",
  ]);
  t.is(dnat.check[4], "-C");
  t.deepEqual(steps.slice(6, 8).map((s) => s.kind === "list" && s.argv.join(" ")), [
    "iptables -w -t filter -L -n",
    "iptables -w -t filter -L RIKLET-INSTANCES -n",
  ]);
});

test("destroy is -C then -D per rule, then ip link del: 7 execs", (t) => {
  const steps = destroySteps(instance!, binariesFor("legacy"));
  t.is(execCount(steps), 7);
  t.truthy(steps.slice(0, 3).every((s) => s.kind === "if-present" && s.check[0] === "iptables-legacy" && s.change[4] === "-D"));
  t.deepEqual(steps[3], { kind: "run", argv: ["ip", "link", "del", instance!.tapName] });
});

test("steps render to bash that reports failures", (t) => {
  t.is(renderStep({ kind: "run", argv: ["ip", "link", "del", "x"] }), "ip link del x || echo 'FAIL ip link del x'");
  t.is(
    renderStep({ kind: "unless-present", check: ["iptables", "-C", "A"], change: ["iptables", "-A", "A"] }),
    "iptables -C A 2>/dev/null || iptables -A A || echo 'FAIL iptables -A A'",
  );
  t.regex(pairsScript([{ label: "sample", instance: instance! }], nft), /echo "PAIR sample \$s \$m \$e"\n$/);
  t.regex(concurrentScript([instance!], "destroy", nft), /} &\nwait\ne=\$EPOCHREALTIME\necho "WALL \$s \$e"\n$/);
});

test("script output parses into per-pair latencies, wall time and failures", (t) => {
  const output = parseScriptOutput(
    "PAIR warm 100.000000 100.010000 100.012000\nPAIR sample 200.5 200.5035 200.504\nFAIL ip link del x\nWALL 1.000001 1.500001\n",
  );
  t.is(output.pairs.length, 2);
  t.is(output.pairs[1]!.label, "sample");
  t.truthy(Math.abs(output.pairs[1]!.createMs - 3.5) < 1e-6);
  t.truthy(Math.abs(output.pairs[1]!.destroyMs - 0.5) < 1e-6);
  t.truthy(Math.abs(output.wallMs! - 500) < 1e-6);
  t.deepEqual(output.failures, ["ip link del x"]);
  t.is(epochMs("1.5"), 1500);
  t.throws(() => epochMs("1,5"));
});

test("splitSpec honours double quotes; shellQuote quotes only when needed", (t) => {
  t.deepEqual(splitSpec('-m comment --comment "rik:a b" -j ACCEPT'), ["-m", "comment", "--comment", "rik:a b", "-j", "ACCEPT"]);
  t.throws(() => splitSpec('--comment "open'));
  t.is(shellQuote("rik:seq-0"), "rik:seq-0");
  t.is(shellQuote("it's"), "'it'\\''s'");
  t.is(shellQuote("a b"), "'a b'");
});

test("the plan lays instances out in the pool the way rik-network allocates them", (t) => {
  const plan = planInstances({ pool: "10.220.0.0/16", size: 3, warmup: 1, samples: 2, concurrent: 2 });
  t.deepEqual(plan.fill.map((i) => i.hostIp), ["10.220.0.1", "10.220.0.5", "10.220.0.9"]);
  t.is(plan.sequential[0]!.hostIp, "10.220.0.13");
  t.deepEqual(plan.concurrent.map((i) => i.hostIp), ["10.220.0.13", "10.220.0.17"]);
  const ports = [...plan.fill, ...plan.warmup, ...plan.sequential, ...plan.concurrent].map((i) => i.hostPort);
  t.is(new Set(ports).size, ports.length);
});
