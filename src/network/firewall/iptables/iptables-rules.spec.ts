import test from "ava";
import {
  instanceRules,
  nodeChainRules,
  nodeChains,
  nodeIpv6Rules,
  nodeJumpRules,
  parseIptablesSave,
  portShardChain,
  renderRestore,
  ruleKey,
  rulesOwnedBy,
} from "./iptables-rules.js";

const POOL = "10.220.0.0/16";
const instance = {
  instanceId: "fn-1",
  guestIp: "10.220.0.2",
  ports: [{ protocol: "tcp" as const, hostPort: 8080, guestPort: 3000 }],
};

test("node setup: chains, one jump per built-in chain inserted at the top, node chains in order", (t) => {
  const options = { pool: "10.220.0.0/24", localhost: true, egressDeny: ["169.254.0.0/16"] };
  const text = renderRestore({ createChains: nodeChains(), insert: nodeJumpRules(options), append: nodeChainRules(options) });
  const c = '-m comment --comment "rik-network"';
  const lines = text.split("\n");
  const natChains = lines.filter((line) => /^:RIKLET-P\d+ /.test(line));
  t.is(natChains.length, 128);
  const portJumps = lines.filter((line) => line.startsWith("-A RIKLET -p "));
  t.is(portJumps.length, 256, "a jump per protocol and shard");
  t.is(portJumps[0], `-A RIKLET -p tcp -m tcp --dport 0:511 ${c} -j RIKLET-P0`);
  t.is(portJumps[15], `-A RIKLET -p tcp -m tcp --dport 7680:8191 ${c} -j RIKLET-P15`);
  t.is(portJumps[255], `-A RIKLET -p udp -m udp --dport 65024:65535 ${c} -j RIKLET-P127`);
  const rest = lines.filter((line) => !/^:RIKLET-P\d+ /.test(line) && !line.startsWith("-A RIKLET -p "));
  t.deepEqual(rest, [
    "*raw",
    `-I PREROUTING 1 -d 127.0.0.0/8 ! -i lo ${c} -j DROP`,
    `-I PREROUTING 1 -i rik+ -m rpfilter --invert ${c} -j DROP`,
    "COMMIT",
    "*nat",
    ":RIKLET - [0:0]",
    ":RIKLET-POSTROUTING - [0:0]",
    `-I PREROUTING 1 -m addrtype --dst-type LOCAL ${c} -j RIKLET`,
    `-I OUTPUT 1 -m addrtype --dst-type LOCAL ${c} -j RIKLET`,
    `-I POSTROUTING 1 ${c} -j RIKLET-POSTROUTING`,
    `-A RIKLET-POSTROUTING -s 10.220.0.0/24 ! -d 10.220.0.0/24 ${c} -j MASQUERADE`,
    `-A RIKLET-POSTROUTING -s 10.220.0.0/24 -d 10.220.0.0/24 -m conntrack --ctstate DNAT ${c} -j MASQUERADE`,
    `-A RIKLET-POSTROUTING -s 127.0.0.0/8 -d 10.220.0.0/24 ${c} -j MASQUERADE`,
    "COMMIT",
    "*filter",
    ":RIKLET-FORWARD - [0:0]",
    ":RIKLET-INPUT - [0:0]",
    `-I FORWARD 1 ${c} -j RIKLET-FORWARD`,
    `-I INPUT 1 -i rik+ ${c} -j RIKLET-INPUT`,
    `-A RIKLET-FORWARD -i rik+ -m conntrack --ctstate INVALID,UNTRACKED ${c} -j DROP`,
    `-A RIKLET-FORWARD -i rik+ -p tcp -m conntrack --ctorigdst 169.254.0.0/16 --ctdir ORIGINAL ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-FORWARD -i rik+ -m conntrack --ctorigdst 169.254.0.0/16 --ctdir ORIGINAL ${c} -j REJECT --reject-with icmp-port-unreachable`,
    `-A RIKLET-FORWARD -d 10.220.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED ${c} -j ACCEPT`,
    `-A RIKLET-FORWARD -d 10.220.0.0/24 -o rik+ -m conntrack --ctstate DNAT ${c} -j ACCEPT`,
    `-A RIKLET-FORWARD -s 10.220.0.0/24 ! -d 10.220.0.0/24 -i rik+ ${c} -j ACCEPT`,
    `-A RIKLET-FORWARD -d 10.220.0.0/24 -p tcp ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-FORWARD -d 10.220.0.0/24 ${c} -j REJECT --reject-with icmp-port-unreachable`,
    `-A RIKLET-FORWARD -i rik+ -p tcp ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-FORWARD -i rik+ ${c} -j REJECT --reject-with icmp-port-unreachable`,
    `-A RIKLET-INPUT -m conntrack --ctstate RELATED,ESTABLISHED ${c} -j RETURN`,
    `-A RIKLET-INPUT -d 169.254.0.0/16 -p tcp ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-INPUT -d 169.254.0.0/16 ${c} -j REJECT --reject-with icmp-port-unreachable`,
    `-A RIKLET-INPUT -p icmp ${c} -j RETURN`,
    `-A RIKLET-INPUT -p tcp ${c} -j REJECT --reject-with tcp-reset`,
    `-A RIKLET-INPUT ${c} -j REJECT --reject-with icmp-port-unreachable`,
    "COMMIT",
    "",
  ]);
});

test("egress deny: each range refused with a reset or an ICMP error, before anything is accepted, forwarded or on the node", (t) => {
  const deny = ["169.254.0.0/16", "198.51.100.0/24"];
  const rules = nodeChainRules({ pool: POOL, localhost: true, egressDeny: deny });
  const forward = rules.filter((rule) => rule.chain === "RIKLET-FORWARD");
  const input = rules.filter((rule) => rule.chain === "RIKLET-INPUT");
  for (const cidr of deny) {
    const inForward = forward.flatMap((rule, at) => (rule.spec.includes(`--ctorigdst ${cidr} --ctdir ORIGINAL `) ? [at] : []));
    t.is(inForward.length, 2, cidr);
    t.true(inForward.every((at) => at < forward.findIndex((rule) => rule.spec.endsWith("-j ACCEPT"))), `${cidr} before every ACCEPT`);
    const inInput = input.flatMap((rule, at) => (rule.spec.startsWith(`-d ${cidr} `) ? [at] : []));
    t.is(inInput.length, 2, cidr);
    t.true(inInput.every((at) => at < input.findIndex((rule) => rule.spec.startsWith("-p icmp"))), `${cidr} before ICMP is let through`);
  }
  for (const rule of [...forward, ...input].filter((rule) => deny.some((cidr) => rule.spec.includes(cidr)))) {
    t.regex(rule.spec, /-j REJECT --reject-with (tcp-reset|icmp-port-unreachable)$/);
  }
  const none = nodeChainRules({ pool: POOL, localhost: true, egressDeny: [] });
  t.is(none.length, rules.length - 4 * deny.length);
});

test("egress deny of a single address renders it as iptables-save prints it, without /32 in the conntrack match", (t) => {
  const rules = nodeChainRules({ pool: POOL, localhost: true, egressDeny: ["192.0.2.1/32"] });
  const saved = parseIptablesSave(`*filter
-A RIKLET-FORWARD -i rik+ -p tcp -m conntrack --ctorigdst 192.0.2.1 --ctdir ORIGINAL -m comment --comment rik-network -j REJECT --reject-with tcp-reset
-A RIKLET-FORWARD -i rik+ -m conntrack --ctorigdst 192.0.2.1 --ctdir ORIGINAL -m comment --comment rik-network -j REJECT --reject-with icmp-port-unreachable
-A RIKLET-INPUT -d 192.0.2.1/32 -p tcp -m comment --comment rik-network -j REJECT --reject-with tcp-reset
-A RIKLET-INPUT -d 192.0.2.1/32 -m comment --comment rik-network -j REJECT --reject-with icmp-port-unreachable
COMMIT
`);
  const present = new Set(saved.rules.map(ruleKey));
  const denying = rules.filter((rule) => rule.spec.includes("192.0.2.1"));
  t.is(denying.length, 4);
  for (const rule of denying) t.true(present.has(ruleKey(rule)), rule.spec);
});

test("IPv6: one raw PREROUTING drop of everything from a guest TAP", (t) => {
  t.is(renderRestore({ insert: nodeIpv6Rules() }), '*raw\n-I PREROUTING 1 -i rik+ -m comment --comment "rik-network" -j DROP\nCOMMIT\n');
});

test("port shards: 512 host ports each", (t) => {
  t.is(portShardChain(1), "RIKLET-P0");
  t.is(portShardChain(511), "RIKLET-P0");
  t.is(portShardChain(512), "RIKLET-P1");
  t.is(portShardChain(65535), "RIKLET-P127");
});

test("without localhost, OUTPUT skips loopback destinations and loopback sources are not masqueraded", (t) => {
  const options = { pool: POOL, localhost: false, egressDeny: [] };
  const output = nodeJumpRules(options).find((rule) => rule.chain === "OUTPUT")!;
  t.is(output.spec, '! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -m comment --comment "rik-network" -j RIKLET');
  t.false(nodeChainRules(options).some((rule) => rule.spec.includes("-s 127.0.0.0/8")));
  t.true(nodeChainRules({ pool: POOL, localhost: true, egressDeny: [] }).some((rule) => rule.spec.includes("-s 127.0.0.0/8")));
});

test("an instance gets a DNAT per port, in the shard of its host port, and no filter rule", (t) => {
  const ports = [
    ...instance.ports,
    { protocol: "udp" as const, hostPort: 5353, guestPort: 53, hostIp: "192.0.2.10" },
    { protocol: "tcp" as const, hostPort: 8081, guestPort: 3000 },
  ];
  const tag = '-m comment --comment "rik:fn-1"';
  t.is(
    renderRestore({ append: instanceRules({ ...instance, ports }) }),
    [
      "*nat",
      `-A RIKLET-P15 -p tcp -m tcp --dport 8080 ${tag} -j DNAT --to-destination 10.220.0.2:3000`,
      `-A RIKLET-P10 -d 192.0.2.10/32 -p udp -m udp --dport 5353 ${tag} -j DNAT --to-destination 10.220.0.2:53`,
      `-A RIKLET-P15 -p tcp -m tcp --dport 8081 ${tag} -j DNAT --to-destination 10.220.0.2:3000`,
      "COMMIT",
      "",
    ].join("\n"),
  );
});

test("without exposure an instance has no rule at all", (t) => {
  t.deepEqual(instanceRules({ ...instance, ports: [] }), []);
  t.is(renderRestore({ delete: instanceRules({ ...instance, ports: [] }) }), "");
});

test("a flush comes after chain creation and before deletions; stale chains go last", (t) => {
  t.is(
    renderRestore({
      createChains: [{ table: "filter", name: "A" }],
      flushChains: [{ table: "filter", name: "B" }],
      delete: [{ table: "filter", chain: "C", spec: "-j ACCEPT" }],
      append: [{ table: "filter", chain: "B", spec: "-j RETURN" }],
      deleteChains: [{ table: "filter", name: "D" }],
    }),
    "*filter\n:A - [0:0]\n-F B\n-D C -j ACCEPT\n-A B -j RETURN\n-F D\n-X D\nCOMMIT\n",
  );
});

test("an empty batch renders nothing", (t) => {
  t.is(renderRestore({}), "");
});

const saved = `# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:RIKLET-FORWARD - [0:0]
-A FORWARD -m comment --comment rik-network -j RIKLET-FORWARD
-A RIKLET-INSTANCES-G0 -d 10.220.0.2/32 -o rikabcdefghijkl -p tcp -m tcp --dport 3000 -m conntrack --ctstate DNAT -m comment --comment "rik:fn-1" -j ACCEPT
-A RIKLET-INSTANCES-G0 -s 10.220.0.2/32 ! -d 10.220.0.0/16 -i rikabcdefghijkl -m comment --comment "rik:fn-1" -j ACCEPT
-A RIKLET-INSTANCES-G0 -s 10.220.0.6/32 ! -d 10.220.0.0/16 -i rikzzzzzzzzzzzz -m comment --comment "rik:fn-10" -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:RIKLET - [0:0]
-A RIKLET-P15 -p tcp -m tcp --dport 8080 -m comment --comment "rik:fn-1" -j DNAT --to-destination 10.220.0.2:3000
COMMIT
*mangle
:RIKLET - [0:0]
COMMIT
`;

test("parses iptables-save into chains and rules of nat and filter", (t) => {
  const parsed = parseIptablesSave(saved);
  t.true(parsed.chains.has("filter RIKLET-FORWARD"));
  t.true(parsed.chains.has("nat RIKLET"));
  t.false(parsed.chains.has("mangle RIKLET"));
  t.is(parsed.rules.length, 5);
});

test("rendered rules compare equal to what iptables-save prints, quoted or not", (t) => {
  const present = new Set(parseIptablesSave(saved).rules.map(ruleKey));
  t.true(present.has(ruleKey(nodeJumpRules({ pool: POOL, localhost: true, egressDeny: [] }).find((rule) => rule.chain === "FORWARD")!)));
  for (const rule of instanceRules({ ...instance, ports: instance.ports })) t.true(present.has(ruleKey(rule)), rule.spec);
});

test("finds the rules an instance owns by exact comment, not by prefix", (t) => {
  const owned = rulesOwnedBy(parseIptablesSave(saved), "fn-1");
  t.deepEqual(
    owned.map((r) => r.chain),
    ["RIKLET-INSTANCES-G0", "RIKLET-INSTANCES-G0", "RIKLET-P15"],
    "rules of an older layout are found too, so that reconcile can remove them",
  );
});
