import test from "ava";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { CliIo } from "./cli-io.js";
import { clientFlags } from "./client-flags.js";
import { cliUsage, commands, runCli } from "./run-cli.js";

/** In-memory streams, and the exit code, of one run. */
async function run(argv: string[], stdin: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    stdin: (async function* () {
      yield* stdin;
    })(),
    env: {},
    signal: new AbortController().signal,
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}

/** A socket path where nothing listens. */
async function missingSocket(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rik-network-cli-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return join(dir, "nothing.sock");
}

const clientCommands = commands.filter((command) => command.name !== "serve");

test("--help lists every command with its summary", async (t) => {
  for (const argv of [["--help"], ["-h"], ["help"]]) {
    const { code, stdout } = await run(argv);
    t.is(code, 0);
    t.is(stdout, cliUsage);
  }
  for (const command of commands) t.regex(cliUsage, new RegExp(`^  ${command.name} +${command.summary.replace(/[()]/g, "\\$&")}$`, "m"));
  t.deepEqual(
    commands.map((command) => command.name),
    ["serve", "apply", "get", "list", "watch", "destroy", "health"],
  );
});

test("COMMAND --help prints that command's usage, and the client commands document every connection flag", async (t) => {
  for (const command of commands) {
    const { code, stdout } = await run([command.name, "--help"]);
    t.is(code, 0, command.name);
    t.is(stdout, command.usage);
    t.true(stdout.startsWith(`Usage: rik-network ${command.name} `), command.name);
  }
  for (const command of clientCommands) {
    const documented = command.name === "watch" ? Object.keys(clientFlags).filter((flag) => flag !== "timeout") : Object.keys(clientFlags);
    for (const flag of documented) t.regex(command.usage, new RegExp(`--${flag}\\b`), `${command.name} --${flag}`);
    if (command.name === "watch") t.notRegex(command.usage, /--timeout/);
  }
});

test("every flag a client command's help documents is one it accepts", async (t) => {
  const socket = await missingSocket(t);
  for (const command of clientCommands) {
    const documented = [...command.usage.matchAll(/^ +(?:-\w, )?--([a-z-]+)(?: ([A-Z_.]+))?/gm)];
    t.true(documented.length >= 8, command.name);
    for (const [, flag, value] of documented) {
      if (flag === "help") continue;
      const positional = /INSTANCE_ID \[options\]/.test(command.usage.split("\n")[0] ?? "") ? ["fn-1"] : [];
      const { stderr } = await run([command.name, ...positional, `--${flag}`, ...(value === undefined ? [] : ["1"]), "--socket", socket]);
      t.notRegex(stderr, /Unknown option|unexpected argument/i, `${command.name} --${flag}: ${stderr}`);
    }
  }
});

test("an unknown command is a usage error (exit 2) followed by the commands", async (t) => {
  const { code, stderr } = await run(["frobnicate"]);
  t.is(code, 2);
  t.true(stderr.startsWith('rik-network: unknown command "frobnicate"\n\n'));
  t.true(stderr.includes(cliUsage));
});

const usageErrors: [string, string[], RegExp][] = [
  ["a missing instance id", ["get"], /^rik-network: expected INSTANCE_ID, got none\nRun "rik-network get --help" for usage\.\n$/],
  ["an extra argument", ["list", "extra"], /expected no argument, got "extra"/],
  ["an unknown flag", ["list", "--bogus"], /Unknown option '--bogus'/],
  ["apply without --id", ["apply", "-f", "w.json"], /--id INSTANCE_ID is required/],
  ["apply without a workload", ["apply", "--id", "fn-1"], /-f WORKLOAD\.json is required to create \(use -f - for the standard input\)/],
  ["an unreadable workload", ["apply", "--id", "fn-1", "-f", "/nonexistent/w.json"], /cannot read the workload file \/nonexistent\/w\.json: ENOENT/],
  ["TLS files without --addr", ["list", "--ca", "ca.pem"], /--ca only apply with --addr HOST:PORT/],
  ["--socket and --addr", ["list", "--socket", "/s", "--addr", "h:1"], /pass either --socket or --addr, not both/],
  ["--insecure with TLS files", ["list", "--addr", "h:1", "--insecure", "--cert", "c"], /--insecure is plain TCP, so --cert would be ignored/],
  ["--cert without --key", ["list", "--addr", "h:1", "--cert", "c.pem"], /--cert and --key go together/],
  ["an unreadable --ca", ["list", "--addr", "h:1", "--ca", "/nonexistent/ca.pem"], /cannot read --ca \/nonexistent\/ca\.pem: ENOENT/],
  ["an --addr without a port", ["list", "--addr", "node-1"], /--addr node-1: expected HOST:PORT/],
  ["a --timeout that is not seconds", ["list", "--timeout", "5s"], /--timeout 5s: expected a number of seconds above 0/],
  ["an empty flag value", ["get", "fn-1", "--socket="], /--socket cannot be empty/],
  ["a serve flag that is wrong", ["serve", "--mtu", "1"], /invalid value "1" for --mtu \/ RIK_NETWORK_MTU.*\nRun "rik-network serve --help" for usage\.\n$/],
  ["serve's flags without the command", ["--listen", "127.0.0.1:7100"], /--listen 127\.0\.0\.1:7100 serves TCP with TLS.*\nRun "rik-network serve --help"/],
];

for (const [what, argv, message] of usageErrors) {
  test(`${what} is a usage error (exit 2) that says what to fix`, async (t) => {
    const { code, stdout, stderr } = await run(argv);
    t.is(code, 2);
    t.is(stdout, "");
    t.regex(stderr, message);
  });
}

test("a service that is not there is exit 1 with the gRPC code, the message and a hint", async (t) => {
  const socket = await missingSocket(t);
  const { code, stdout, stderr } = await run(["list", "--socket", socket]);
  t.is(code, 1);
  t.is(stdout, "");
  t.regex(stderr, new RegExp(`^rik-network: UNAVAILABLE: .*connect ENOENT ${socket}.*\\nhint: is rik-network running, on this --socket or --addr\\?\\n$`));
});

test("-h after -- is an argument, not a request for help", async (t) => {
  const socket = await missingSocket(t);
  const { code, stderr } = await run(["get", "--socket", socket, "--", "-h"]);
  t.is(code, 1);
  t.regex(stderr, /UNAVAILABLE/);
});

/** Whether importing `module` in a fresh node maps koffi's native library (the FFI of the TAP ioctls) into it. */
async function loadsFfi(module: URL): Promise<boolean> {
  const script = 'await import(process.argv[1]); process.stdout.write(String(/koffi/.test((await import("node:fs")).readFileSync("/proc/self/maps", "utf8"))));';
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, module.href], { encoding: "utf8" });
  return stdout === "true";
}

test("the commands and their configuration load no FFI: only the daemon's network plane does, when serve starts it", async (t) => {
  t.true(await loadsFfi(new URL("../network/kernel/tun-ioctl.mjs", import.meta.url)), "the test's premise: the TAP ioctls' module loads it");
  t.false(await loadsFfi(new URL("./index.ts", import.meta.url)), "the CLI (list, --help...)");
  t.false(await loadsFfi(new URL("../config/index.ts", import.meta.url)), "the configuration");
});
