import test from "ava";
import {
  cidrRange,
  instanceElements,
  nodeChains,
  nodeTable,
  renderAddElements,
  renderChain,
  renderDeleteElements,
  renderRules,
  renderSet,
  ruleComment,
  withoutContained,
} from "./nft-rules.js";

const policy = { pool: "10.220.0.0/24", localhost: true, egressDeny: ["169.254.0.0/16"] };

test("an instance's DNATs are elements: unbound ports in ports, ports bound to a node address in bound_ports", (t) => {
  const elements = instanceElements({
    instanceId: "fn-1",
    guestIp: "10.220.0.2",
    ports: [
      { protocol: "tcp", hostPort: 8080, guestPort: 3000 },
      { protocol: "udp", hostPort: 5353, guestPort: 53, hostIp: "192.0.2.10" },
    ],
  });
  t.deepEqual(elements, [
    { map: "ports", key: "tcp . 8080", value: "10.220.0.2 . 3000" },
    { map: "bound_ports", key: "192.0.2.10 . udp . 5353", value: "10.220.0.2 . 53" },
  ]);
  t.is(
    renderAddElements(elements),
    "add element inet rik-network ports { tcp . 8080 : 10.220.0.2 . 3000 }\n" +
      "add element inet rik-network bound_ports { 192.0.2.10 . udp . 5353 : 10.220.0.2 . 53 }\n",
  );
  t.is(
    renderDeleteElements(elements),
    "delete element inet rik-network ports { tcp . 8080 }\ndelete element inet rik-network bound_ports { 192.0.2.10 . udp . 5353 }\n",
  );
});

test("elements of one map go in one line; an instance without ports renders nothing", (t) => {
  const elements = instanceElements({
    instanceId: "fn-2",
    guestIp: "10.220.0.6",
    ports: [
      { protocol: "tcp", hostPort: 80, guestPort: 8080 },
      { protocol: "udp", hostPort: 80, guestPort: 8080 },
    ],
  });
  t.is(renderAddElements(elements), "add element inet rik-network ports { tcp . 80 : 10.220.0.6 . 8080, udp . 80 : 10.220.0.6 . 8080 }\n");
  t.is(renderAddElements(instanceElements({ instanceId: "fn-3", guestIp: "10.220.0.10", ports: [] })), "");
  t.is(renderDeleteElements([]), "");
});

test("the chains: their hooks, numeric priorities, and the localhost policy in nat_output and nat_postrouting", (t) => {
  const chains = nodeChains(policy);
  t.deepEqual(
    chains.map((chain) => [chain.name, chain.base?.hook, chain.base?.priority]),
    [
      ["raw_prerouting", "prerouting", -300],
      ["nat_prerouting", "prerouting", -101],
      ["nat_output", "output", -101],
      ["nat_postrouting", "postrouting", 99],
      ["filter_forward", "forward", 0],
      ["filter_input", "input", 0],
      ["guest_input", undefined, undefined],
    ],
  );
  const output = chains.find((chain) => chain.name === "nat_output")!;
  t.false(output.rules.some((rule) => rule.includes("127.0.0.0/8 return")));
  const withoutLocalhost = nodeChains({ ...policy, localhost: false });
  t.is(withoutLocalhost.find((chain) => chain.name === "nat_output")!.rules[0], "ip daddr 127.0.0.0/8 return");
  t.false(withoutLocalhost.find((chain) => chain.name === "nat_postrouting")!.rules.some((rule) => rule.startsWith("ip saddr 127.0.0.0/8")));
  t.true(chains.find((chain) => chain.name === "nat_postrouting")!.rules.some((rule) => rule.startsWith("ip saddr 127.0.0.0/8")));
});

test("filter_forward: untracked drops first, then the egress deny on the original destination, then the accepts, then refusals", (t) => {
  const forward = nodeChains(policy).find((chain) => chain.name === "filter_forward")!.rules;
  t.regex(forward[0]!, /ct state invalid,untracked drop$/);
  t.regex(forward[1]!, /ct direction original ct original ip daddr @egress_deny meta l4proto tcp reject with tcp reset$/);
  t.regex(forward[2]!, /ct original ip daddr @egress_deny reject with icmpx type port-unreachable$/);
  const firstAccept = forward.findIndex((rule) => rule.endsWith("accept"));
  const firstReject = forward.findIndex((rule, at) => at > 2 && rule.includes("reject"));
  t.true(firstAccept > 2 && firstReject > firstAccept);
  t.true(forward.slice(firstReject).every((rule) => rule.includes("reject")));
});

test("raw_prerouting: IPv6 from any guest link dropped first, then loopback from outside, then sources that do not route back as unicast", (t) => {
  t.deepEqual(nodeChains(policy)[0]!.rules, [
    'iifname "rik*" meta nfproto ipv6 drop',
    'iifname != "lo" ip daddr 127.0.0.0/8 drop',
    'iifname "rik*" fib saddr . iif oif missing drop',
    'iifname "rik*" fib saddr type != unicast drop',
  ]);
});

test("rendering: chains with their hook, rules with their digest comment, interval sets", (t) => {
  const [raw] = nodeChains(policy);
  t.is(renderChain(raw!), "add chain inet rik-network raw_prerouting { type filter hook prerouting priority -300; policy accept; }");
  const guestInput = nodeChains(policy).find((chain) => chain.name === "guest_input")!;
  t.is(renderChain(guestInput), "add chain inet rik-network guest_input");
  t.is(renderRules(raw!)[0], `add rule inet rik-network raw_prerouting iifname "rik*" meta nfproto ipv6 drop comment "${ruleComment("raw_prerouting", 'iifname "rik*" meta nfproto ipv6 drop')}"`);
  t.deepEqual(renderSet({ name: "egress_deny", elements: [] }), ["add set inet rik-network egress_deny { type ipv4_addr; flags interval; }"]);
  t.deepEqual(renderSet({ name: "pool", elements: ["10.220.0.0/24"] }), [
    "add set inet rik-network pool { type ipv4_addr; flags interval; elements = { 10.220.0.0/24 }; }",
  ]);
});

test("a rule's comment is a digest of its chain and text: the same rule elsewhere, or changed, gets another", (t) => {
  const comment = ruleComment("nat_output", "ip daddr 127.0.0.0/8 return");
  t.regex(comment, /^rik-network:[0-9a-f]{16}$/);
  t.is(ruleComment("nat_output", "ip daddr 127.0.0.0/8 return"), comment);
  t.not(ruleComment("nat_prerouting", "ip daddr 127.0.0.0/8 return"), comment);
  t.not(ruleComment("nat_output", "ip daddr 127.0.0.0/8 accept"), comment);
});

test("the egress deny set leaves out CIDRs another listed one covers (an interval set refuses overlaps)", (t) => {
  t.deepEqual(withoutContained(["169.254.0.0/16", "169.254.169.254/32", "10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24"]), [
    "169.254.0.0/16",
    "10.0.0.0/8",
    "192.0.2.0/24",
  ]);
  t.deepEqual(withoutContained(["10.0.0.0/24", "10.0.0.0/24"]), ["10.0.0.0/24"], "of equal ones, the first stays");
  t.deepEqual(withoutContained([]), []);
  t.deepEqual(nodeTable({ ...policy, egressDeny: ["169.254.169.254/32", "169.254.0.0/16"] }).sets[1], { name: "egress_deny", elements: ["169.254.0.0/16"] });
});

test("cidrRange: first and last address, a bare address as a /32", (t) => {
  t.deepEqual(cidrRange("10.220.0.0/24"), [0x0adc0000, 0x0adc00ff]);
  t.deepEqual(cidrRange("192.0.2.7"), [0xc0000207, 0xc0000207]);
  t.deepEqual(cidrRange("0.0.0.0/0"), [0, 0xffffffff]);
});
