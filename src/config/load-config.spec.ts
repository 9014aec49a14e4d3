import test from "ava";
import { hostname } from "node:os";
import { ConfigError, loadConfig, usage } from "./load-config.js";

test("defaults", (t) => {
  t.deepEqual(loadConfig([], {}), {
    socketPath: "/run/rik-network/rik-network.sock",
    nodeName: hostname(),
    pool: "10.220.0.0/16",
    mtu: 1500,
    logLevel: "info",
  });
});

const env = {
  RIK_NETWORK_SOCKET: "/tmp/env.sock",
  RIK_NETWORK_LISTEN: "127.0.0.1:7100",
  RIK_NETWORK_NODE_NAME: "env-node",
  RIK_NETWORK_POOL: "10.221.0.0/24",
  RIK_NETWORK_MTU: "9000",
  RIK_NETWORK_LOG_LEVEL: "debug",
};

test("reads every setting from the environment", (t) => {
  t.deepEqual(loadConfig([], env), {
    socketPath: "/tmp/env.sock",
    listen: { host: "127.0.0.1", port: 7100 },
    nodeName: "env-node",
    pool: "10.221.0.0/24",
    mtu: 9000,
    logLevel: "debug",
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
  ];
  t.deepEqual(loadConfig(argv, env), {
    socketPath: "/tmp/flag.sock",
    listen: { host: "::1", port: 7200 },
    nodeName: "flag-node",
    pool: "192.168.64.0/20",
    mtu: 1400,
    logLevel: "warn",
  });
});

test("an empty variable counts as unset", (t) => {
  t.is(loadConfig([], { RIK_NETWORK_MTU: "" }).mtu, 1500);
  t.false("listen" in loadConfig([], { RIK_NETWORK_LISTEN: "" }));
});

test("a relative socket path is made absolute", (t) => {
  t.is(loadConfig(["--socket", "rik.sock"], {}).socketPath, `${process.cwd()}/rik.sock`);
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
];

for (const [what, argv, environment, message] of invalid) {
  test(`rejects ${what}`, (t) => {
    const error = t.throws(() => loadConfig(argv, environment), { instanceOf: ConfigError });
    t.regex(error?.message ?? "", message);
  });
}

test("the help text documents every flag and its variable", (t) => {
  for (const name of ["socket", "listen", "node-name", "pool", "mtu", "log-level", "help"]) {
    t.true(usage.includes(`--${name}`), name);
  }
  for (const name of ["SOCKET", "LISTEN", "NODE_NAME", "POOL", "MTU", "LOG_LEVEL"]) {
    t.true(usage.includes(`RIK_NETWORK_${name}`), name);
  }
});
