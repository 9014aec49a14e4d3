export type { CliCommand } from "./cli-command.js";
export type { CliIo } from "./cli-io.js";
export { CliUsageError } from "./cli-usage-error.js";
export { cliUsage, commands, runCli, usageExitCode } from "./run-cli.js";
