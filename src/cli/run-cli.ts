import * as grpc from "@grpc/grpc-js";
import { ConfigError } from "../config/index.js";
import { applyCommand } from "./apply-command.js";
import type { CliCommand } from "./cli-command.js";
import type { CliIo } from "./cli-io.js";
import { CliUsageError } from "./cli-usage-error.js";
import { destroyCommand } from "./destroy-command.js";
import { getCommand } from "./get-command.js";
import { healthCommand } from "./health-command.js";
import { listCommand } from "./list-command.js";
import { serveCommand } from "./serve-command.js";
import { watchCommand } from "./watch-command.js";

/** Exit code of a command-line mistake, as opposed to 1 for a failure at run time. */
export const usageExitCode = 2;

export const commands: readonly CliCommand[] = [
  serveCommand,
  applyCommand,
  getCommand,
  listCommand,
  watchCommand,
  destroyCommand,
  healthCommand,
];

export const cliUsage = `Usage: rik-network [COMMAND] [options]

The network plane of a RIK worker node: the daemon, and a client of its gRPC API
(rik.network.v1.WorkloadNetwork).

Commands:
${commands.map((command) => `  ${command.name.padEnd(9)} ${command.summary}`).join("\n")}

Without a command (or with options only), rik-network serves.
Run "rik-network COMMAND --help" for a command's options.
`;

function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as grpc.ServiceError).code === "number" && "details" in error;
}

/** What to try when the service cannot be reached. */
function hint(error: grpc.ServiceError): string {
  if (error.code !== grpc.status.UNAVAILABLE) return "";
  const hints: [RegExp, string][] = [
    [/EACCES/, "the socket is root's (mode 0600): run as root, or serve with --socket-group"],
    [/ENOENT|ECONNREFUSED/, "is rik-network running, on this --socket or --addr?"],
    [/certificate required/, "this server verifies clients (mTLS): pass --cert and --key, signed by its --tls-client-ca"],
    [/self-signed certificate|local issuer|unable to verify/, "pass --ca with the CA that signed the server's certificate"],
    [/altnames/, "--addr must use a name or address that the server's certificate lists (subjectAltName)"],
  ];
  const found = hints.find(([pattern]) => pattern.test(error.details));
  return found === undefined ? "" : `\nhint: ${found[1]}`;
}

/** Help asked for before any "--" (after it, "-h" could be an instance id). */
function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === "--help" || arg === "-h");
}

/**
 * `rik-network [COMMAND] [args]`: picks the command (serve when the first argument is
 * missing or an option), answers --help, runs it, and turns failures into a line on
 * stderr — `rik-network: NOT_FOUND: ...` for a gRPC status — and an exit code:
 * 0 success, 1 failure, 2 wrong command line.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === "--help" || first === "-h" || first === "help") {
    io.stdout.write(cliUsage);
    return 0;
  }
  const name = first === undefined || first.startsWith("-") ? "serve" : first;
  const args = name === first ? rest : argv;
  const command = commands.find((candidate) => candidate.name === name);
  if (command === undefined) {
    io.stderr.write(`rik-network: unknown command "${name}"\n\n${cliUsage}`);
    return usageExitCode;
  }
  if (wantsHelp(args)) {
    io.stdout.write(command.usage);
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    if (error instanceof CliUsageError || error instanceof ConfigError) {
      io.stderr.write(`rik-network: ${error.message}\nRun "rik-network ${command.name} --help" for usage.\n`);
      return usageExitCode;
    }
    if (isServiceError(error)) {
      const details = error.details.replace(/\s*Resolution note:\s*$/, "");
      io.stderr.write(`rik-network: ${grpc.status[error.code] ?? error.code}: ${details}${hint(error)}\n`);
      return 1;
    }
    throw error;
  }
}
