import type { CliIo } from "./cli-io.js";

/** One subcommand of `rik-network`. */
export interface CliCommand {
  readonly name: string;
  /** One line, for `rik-network --help`. */
  readonly summary: string;
  /** The whole `rik-network NAME --help`. */
  readonly usage: string;
  /** Runs with the arguments after the command's name; resolves with the exit code. */
  run(args: readonly string[], io: CliIo): Promise<number>;
}
