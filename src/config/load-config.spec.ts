import test from "ava";
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { ConfigError } from "./config-error.js";
import { loadConfig } from "./load-config.js";
import { flagTable, usage } from "./options.js";

const autoIptables = {
  restoreCommand: "iptables-restore",
  saveCommand: "iptables-save",
  restore6Command: "ip6tables-restore",
  save6Command: "ip6tables-save",
};

test("defaults", (t) => {
  t.deepEqual(loadConfig([], {}), {
    socketPath: "/run/rik-network/rik-network.sock",
    metricsListen: { host: "127.0.0.1", port: 9464 },
    nodeName: hostname(),
    pool: "10.220.0.0/16",
    mtu: "auto",
    localhost: true,
    hostPorts: { min: 1, max: 32767 },
    reservedPorts: [],
    logLevel: "info",
    stateDir: "/var/lib/rik-network",
    resyncIntervalMs: 30_000,
    spareTaps: 4,
    maxPortsPerInstance: 64,
    firewallBackend: "auto",
    iptablesBackend: "auto",
    iptables: autoIptables,
    egressDeny: ["169.254.0.0/16"],
  });
});

const env = {
  RIK_NETWORK_SOCKET: "/tmp/env.sock",
  RIK_NETWORK_LISTEN: "127.0.0.1:7100",
  RIK_NETWORK_NODE_NAME: "env-node",
  RIK_NETWORK_POOL: "10.221.0.0/24",
  RIK_NETWORK_MTU: "9000",
  RIK_NETWORK_LOG_LEVEL: "debug",
  RIK_NETWORK_SOCKET_GROUP: "env-group",
  RIK_NETWORK_TLS_CERT: "/etc/env/cert.pem",
  RIK_NETWORK_TLS_KEY: "/etc/env/key.pem",
  RIK_NETWORK_TLS_CLIENT_CA: "/etc/env/ca.pem",
  RIK_NETWORK_METRICS_LISTEN: "0.0.0.0:9100",
  RIK_NETWORK_STATE_DIR: "/srv/env-state",
  RIK_NETWORK_RESYNC_INTERVAL: "0",
  RIK_NETWORK_IPTABLES_BACKEND: "legacy",
  RIK_NETWORK_FIREWALL_BACKEND: "iptables",
  RIK_NETWORK_LOCALHOST: "false",
  RIK_NETWORK_HOST_PORTS: "20000-29999",
  RIK_NETWORK_RESERVED_PORTS: "2379, 10250",
  RIK_NETWORK_SPARE_TAPS: "0",
  RIK_NETWORK_EGRESS_DENY: "169.254.0.0/16, 100.64.0.0/10",
  RIK_NETWORK_MAX_PORTS_PER_INSTANCE: "8",
};

test("reads every setting from the environment", (t) => {
  t.deepEqual(loadConfig([], env), {
    socketPath: "/tmp/env.sock",
    socketGroup: "env-group",
    listen: {
      host: "127.0.0.1",
      port: 7100,
      tls: { certPath: "/etc/env/cert.pem", keyPath: "/etc/env/key.pem", clientCaPath: "/etc/env/ca.pem" },
    },
    metricsListen: { host: "0.0.0.0", port: 9100 },
    nodeName: "env-node",
    pool: "10.221.0.0/24",
    mtu: 9000,
    localhost: false,
    hostPorts: { min: 20000, max: 29999 },
    reservedPorts: [2379, 10250],
    logLevel: "debug",
    stateDir: "/srv/env-state",
    resyncIntervalMs: 0,
    spareTaps: 0,
    maxPortsPerInstance: 8,
    firewallBackend: "iptables",
    iptablesBackend: "legacy",
    iptables: {
      restoreCommand: "iptables-legacy-restore",
      saveCommand: "iptables-legacy-save",
      restore6Command: "ip6tables-legacy-restore",
      save6Command: "ip6tables-legacy-save",
    },
    egressDeny: ["169.254.0.0/16", "100.64.0.0/10"],
  });
});

test("flags override the environment", (t) => {
  const argv = [
    "--socket",
    "/tmp/flag.sock",
    "--listen=[::1]:7200",
    "--node-name",
    "flag-node",
    "--pool",
    "192.168.64.0/20",
    "--mtu",
    "1400",
    "--log-level",
    "warn",
    "--socket-group",
    "flag-group",
    "--tls-cert",
    "/etc/flag/cert.pem",
    "--tls-key=/etc/flag/key.pem",
    "--tls-client-ca",
    "/etc/flag/ca.pem",
    "--metrics-listen",
    "off",
    "--state-dir",
    "/srv/flag-state",
    "--resync-interval",
    "2.5",
    "--iptables-backend",
    "nft",
    "--firewall-backend",
    "nft",
    "--localhost",
    "yes",
    "--host-ports",
    "1024-65535",
    "--reserved-ports",
    "53",
    "--spare-taps",
    "16",
    "--egress-deny",
    "none",
    "--max-ports-per-instance",
    "128",
  ];
  t.deepEqual(loadConfig(argv, env), {
    socketPath: "/tmp/flag.sock",
    socketGroup: "flag-group",
    listen: {
      host: "::1",
      port: 7200,
      tls: { certPath: "/etc/flag/cert.pem", keyPath: "/etc/flag/key.pem", clientCaPath: "/etc/flag/ca.pem" },
    },
    nodeName: "flag-node",
    pool: "192.168.64.0/20",
    mtu: 1400,
    localhost: true,
    hostPorts: { min: 1024, max: 65535 },
    reservedPorts: [53],
    logLevel: "warn",
    stateDir: "/srv/flag-state",
    resyncIntervalMs: 2500,
    spareTaps: 16,
    maxPortsPerInstance: 128,
    firewallBackend: "nft",
    iptablesBackend: "nft",
    iptables: {
      restoreCommand: "iptables-nft-restore",
      saveCommand: "iptables-nft-save",
      restore6Command: "ip6tables-nft-restore",
      save6Command: "ip6tables-nft-save",
    },
    egressDeny: [],
  });
});

test("--egress-deny takes IPv4 CIDRs outside the pool, or none", (t) => {
  t.deepEqual(loadConfig(["--egress-deny", "198.51.100.0/24,169.254.0.0/16,198.51.100.0/24"], {}).egressDeny, ["198.51.100.0/24", "169.254.0.0/16"]);
  t.deepEqual(loadConfig(["--egress-deny", "none"], {}).egressDeny, []);
  const error = (argv: string[]) => t.throws(() => loadConfig(argv, {}), { instanceOf: ConfigError })?.message;
  t.regex(error(["--egress-deny", "169.254.0.0/33"]) ?? "", /--egress-deny \/ RIK_NETWORK_EGRESS_DENY.*IPv4 CIDRs/);
  t.regex(error(["--egress-deny", "169.254.1.1/16"]) ?? "", /host bits set/);
  t.regex(error(["--egress-deny", "169.254.0.0/16,"]) ?? "", /IPv4 CIDRs/);
  t.regex(error(["--pool", "10.220.0.0/16", "--egress-deny", "10.0.0.0/8"]) ?? "", /overlaps the instances' pool 10\.220\.0\.0\/16/);
});

test("an empty variable counts as unset", (t) => {
  t.is(loadConfig([], { RIK_NETWORK_MTU: "" }).mtu, "auto");
  t.false("listen" in loadConfig([], { RIK_NETWORK_LISTEN: "" }));
});

test("relative socket, state and TLS paths are made absolute", (t) => {
  const config = loadConfig(
    ["--socket", "rik.sock", "--state-dir", "state", "--listen", "127.0.0.1:7100", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"],
    {},
  );
  t.is(config.socketPath, `${process.cwd()}/rik.sock`);
  t.is(config.stateDir, `${process.cwd()}/state`);
  t.deepEqual(config.listen?.tls, {
    certPath: `${process.cwd()}/c.pem`,
    keyPath: `${process.cwd()}/k.pem`,
    clientCaPath: `${process.cwd()}/ca.pem`,
  });
});

test("--listen without the TLS files is an error that says what to pass", (t) => {
  const error = t.throws(() => loadConfig(["--listen", "0.0.0.0:7100"], {}), { instanceOf: ConfigError });
  t.regex(error?.message ?? "", /--listen 0\.0\.0\.0:7100 serves TCP with TLS and verifies client certificates \(mTLS\)/);
  t.regex(error?.message ?? "", /--tls-cert FILE \(RIK_NETWORK_TLS_CERT\), --tls-key FILE \(RIK_NETWORK_TLS_KEY\), --tls-client-ca FILE \(RIK_NETWORK_TLS_CLIENT_CA\)/);
  t.regex(error?.message ?? "", /or pass --insecure-tcp/);
});

test("--listen with only some TLS files names the missing ones", (t) => {
  const error = t.throws(() => loadConfig(["--listen", "127.0.0.1:7100", "--tls-cert", "/c.pem"], {}), { instanceOf: ConfigError });
  t.regex(error?.message ?? "", /needs --tls-key FILE \(RIK_NETWORK_TLS_KEY\), --tls-client-ca FILE/);
  t.notRegex(error?.message ?? "", /--tls-cert FILE/);
});

test("--insecure-tcp serves plain TCP, from the flag or the environment", (t) => {
  t.deepEqual(loadConfig(["--listen", "127.0.0.1:7100", "--insecure-tcp"], {}).listen, {
    host: "127.0.0.1",
    port: 7100,
    tls: "insecure",
  });
  t.is(loadConfig(["--listen", "127.0.0.1:7100"], { RIK_NETWORK_INSECURE_TCP: "true" }).listen?.tls, "insecure");
  t.throws(() => loadConfig(["--listen", "127.0.0.1:7100"], { RIK_NETWORK_INSECURE_TCP: "0" }), { message: /needs --tls-cert/ });
});

test("the resync interval is in seconds, 0 turning it off", (t) => {
  t.is(loadConfig(["--resync-interval", "0"], {}).resyncIntervalMs, 0);
  t.is(loadConfig(["--resync-interval", "0.2"], {}).resyncIntervalMs, 200);
  t.is(loadConfig([], { RIK_NETWORK_RESYNC_INTERVAL: "60" }).resyncIntervalMs, 60_000);
});

test("spare TAPs: 0 turns them off, up to 64", (t) => {
  t.is(loadConfig(["--spare-taps", "0"], {}).spareTaps, 0);
  t.is(loadConfig(["--spare-taps", "64"], {}).spareTaps, 64);
  t.is(loadConfig([], { RIK_NETWORK_SPARE_TAPS: "8" }).spareTaps, 8);
});

test("TAP owner and group: unset by default (root only), numeric ids from a flag or the environment, the flag first", (t) => {
  const defaults = loadConfig([], {});
  t.false("tapOwner" in defaults);
  t.false("tapGroup" in defaults);
  t.like(loadConfig([], { RIK_NETWORK_TAP_OWNER: "65534", RIK_NETWORK_TAP_GROUP: "0" }), { tapOwner: 65534, tapGroup: 0 });
  t.like(loadConfig(["--tap-owner", "123", "--tap-group=4294967294"], { RIK_NETWORK_TAP_OWNER: "65534" }), { tapOwner: 123, tapGroup: 4294967294 });
  t.false("tapOwner" in loadConfig([], { RIK_NETWORK_TAP_OWNER: "" }), "an empty variable is unset");
});

for (const [what, argv, environment, message] of [
  ["a TAP owner given as a name", ["--tap-owner", "nobody"], {}, /--tap-owner \/ RIK_NETWORK_TAP_OWNER.*expected a numeric user id from 0 to 4294967294/],
  ["a negative TAP owner", ["--tap-owner", "-1"], {}, /tap-owner/],
  ["a TAP owner of (u32)-1, the kernel's none", [], { RIK_NETWORK_TAP_OWNER: "4294967295" }, /RIK_NETWORK_TAP_OWNER\): expected a numeric user id/],
  ["a fractional TAP group", ["--tap-group", "100.5"], {}, /--tap-group \/ RIK_NETWORK_TAP_GROUP.*expected a numeric group id/],
  ["a TAP group past 32 bits", [], { RIK_NETWORK_TAP_GROUP: "99999999999" }, /expected a numeric group id/],
] as [string, string[], Record<string, string>, RegExp][]) {
  test(`rejects ${what}`, (t) => {
    t.regex(t.throws(() => loadConfig(argv, environment), { instanceOf: ConfigError })?.message ?? "", message);
  });
}

test("exposure entries per instance: 64 by default, 0 to 65535", (t) => {
  t.is(loadConfig([], {}).maxPortsPerInstance, 64);
  t.is(loadConfig(["--max-ports-per-instance", "0"], {}).maxPortsPerInstance, 0);
  t.is(loadConfig(["--max-ports-per-instance", "65535"], {}).maxPortsPerInstance, 65535);
  t.is(loadConfig([], { RIK_NETWORK_MAX_PORTS_PER_INSTANCE: "1" }).maxPortsPerInstance, 1);
  for (const value of ["65536", "-1", "1.5", "64 ", "lots", "0x40"]) {
    const error = t.throws(() => loadConfig([`--max-ports-per-instance=${value}`], {}), { instanceOf: ConfigError });
    t.regex(error.message, /--max-ports-per-instance \/ RIK_NETWORK_MAX_PORTS_PER_INSTANCE.*expected an integer between 0 and 65535/, value);
  }
});

test("the metrics endpoint can be turned off or moved", (t) => {
  t.false("metricsListen" in loadConfig(["--metrics-listen", "off"], {}));
  t.deepEqual(loadConfig([], { RIK_NETWORK_METRICS_LISTEN: "[::1]:9000" }).metricsListen, { host: "::1", port: 9000 });
});

const invalid: [string, string[], Record<string, string>, RegExp][] = [
  ["an unknown flag", ["--bogus"], {}, /--bogus/],
  ["a positional argument", ["extra"], {}, /extra/],
  ["a flag without its value", ["--mtu"], {}, /--mtu/],
  ["an empty flag value", ["--socket="], {}, /--socket \/ RIK_NETWORK_SOCKET \(from --socket\): cannot be empty/],
  ["a socket path too long for sun_path", ["--socket", `/tmp/${"s".repeat(120)}`], {}, /at most 107 bytes/],
  ["a listen address without a port", ["--listen", "127.0.0.1"], {}, /expected HOST:PORT/],
  ["an IPv6 listen address without brackets", ["--listen", "::1:7100"], {}, /\[IPV6\]:PORT/],
  ["a listen port out of range", [], { RIK_NETWORK_LISTEN: "0.0.0.0:70000" }, /RIK_NETWORK_LISTEN\): the port/],
  ["a node name with spaces", ["--node-name", "node a"], {}, /--node-name \/ RIK_NETWORK_NODE_NAME/],
  ["a pool that is not a CIDR", ["--pool", "10.220.0.0"], {}, /not an IPv4 CIDR/],
  ["an IPv6 pool", ["--pool", "fd00::/64"], {}, /not an IPv4 CIDR/],
  ["an unaligned pool", ["--pool", "10.220.0.1/16"], {}, /did you mean 10\.220\.0\.0\/16\?/],
  ["a pool prefix below 8", ["--pool", "10.0.0.0/7"], {}, /between 8 and 30/],
  ["a pool prefix above 30", [], { RIK_NETWORK_POOL: "10.220.0.0/31" }, /RIK_NETWORK_POOL\): the prefix length must be between 8 and 30/],
  ["an MTU that is not a number", [], { RIK_NETWORK_MTU: "abc" }, /"abc" for --mtu \/ RIK_NETWORK_MTU \(from RIK_NETWORK_MTU\)/],
  ["an MTU below 68", ["--mtu", "67"], {}, /between 68 and 65535/],
  ["an MTU above 65535", ["--mtu", "65536"], {}, /between 68 and 65535/],
  ["a fractional MTU", ["--mtu", "1500.5"], {}, /between 68 and 65535/],
  ["an unknown log level", ["--log-level", "verbose"], {}, /expected one of error, warn, info, debug/],
  ["a host port range without a dash", ["--host-ports", "8080"], {}, /--host-ports \/ RIK_NETWORK_HOST_PORTS.*expected MIN-MAX/],
  ["an inverted host port range", [], { RIK_NETWORK_HOST_PORTS: "9000-8000" }, /expected MIN-MAX.*MIN <= MAX/],
  ["a host port range starting at 0", ["--host-ports", "0-100"], {}, /expected MIN-MAX/],
  ["a host port range past 65535", ["--host-ports", "1-70000"], {}, /expected MIN-MAX/],
  ["a reserved port that is not a number", ["--reserved-ports", "22,ssh"], {}, /--reserved-ports \/ RIK_NETWORK_RESERVED_PORTS.*comma-separated ports/],
  ["a reserved port 0", ["--reserved-ports", "0"], {}, /comma-separated ports between 1 and 65535/],
  ["a localhost value that is not a boolean", ["--localhost", "maybe"], {}, /--localhost \/ RIK_NETWORK_LOCALHOST.*expected true or false/],
  ["TLS files without --listen", ["--tls-cert", "/c.pem"], {}, /--tls-cert only apply to the TCP listener: pass --listen/],
  ["--insecure-tcp without --listen", ["--insecure-tcp"], {}, /--insecure-tcp only apply to the TCP listener/],
  ["--insecure-tcp with TLS files", ["--listen", "127.0.0.1:1", "--insecure-tcp", "--tls-key", "/k.pem"], {}, /--tls-key would be ignored/],
  ["a value for the boolean --insecure-tcp", ["--insecure-tcp=yes"], {}, /insecure-tcp/],
  ["an RIK_NETWORK_INSECURE_TCP that is not a boolean", ["--listen", "127.0.0.1:1"], { RIK_NETWORK_INSECURE_TCP: "maybe" }, /expected true or false/],
  ["a socket group with spaces", ["--socket-group", "rik admins"], {}, /expected a group name/],
  ["a metrics address without a port", ["--metrics-listen", "127.0.0.1"], {}, /--metrics-listen \/ RIK_NETWORK_METRICS_LISTEN .*expected HOST:PORT/],
  ["a negative resync interval", ["--resync-interval", "-1"], {}, /resync-interval/],
  ["more spare TAPs than 64", ["--spare-taps", "65"], {}, /--spare-taps \/ RIK_NETWORK_SPARE_TAPS.*expected an integer between 0 \(off\) and 64/],
  ["a spare TAP count that is not an integer", [], { RIK_NETWORK_SPARE_TAPS: "two" }, /expected an integer between 0 \(off\) and 64/],
  ["a resync interval that is not a number", [], { RIK_NETWORK_RESYNC_INTERVAL: "30s" }, /expected seconds between 0 \(off\) and 86400/],
  ["an unknown iptables backend", ["--iptables-backend", "ebpf"], {}, /expected one of auto, nft, legacy/],
  ["an unknown firewall backend", ["--firewall-backend", "ebpf"], {}, /--firewall-backend.*expected one of auto, nft, iptables/],
];

for (const [what, argv, environment, message] of invalid) {
  test(`rejects ${what}`, (t) => {
    const error = t.throws(() => loadConfig(argv, environment), { instanceOf: ConfigError });
    t.regex(error?.message ?? "", message);
  });
}

/** [flag, variable without RIK_NETWORK_], from the option table itself, so that no flag is left out. */
const flagsAndVariables = flagTable.map(({ flag, env }) => [flag, env.replace(/^RIK_NETWORK_/, "")] as const);

test("the help text documents every flag with its variable", (t) => {
  for (const [flag, variable] of flagsAndVariables) {
    t.regex(usage, new RegExp(`^  --${flag}\\b.*\\[RIK_NETWORK_${variable}\\]$`, "m"), flag);
  }
  t.true(usage.includes("--help"));
});

test("the README's configuration table lists every flag with its variable", async (t) => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  for (const [flag, variable] of flagsAndVariables) {
    t.regex(readme, new RegExp(`^\\| \`--${flag}[ \`].*\\| \`RIK_NETWORK_${variable}\`[^|]*\\|`, "m"), flag);
  }
});
