import { loadConfig, usage } from "../config/index.js";
import { createLogger } from "../logger.js";
import type { CliCommand } from "./cli-command.js";

export const serveCommand: CliCommand = {
  name: "serve",
  summary: "run the network plane daemon (the default command)",
  usage,
  async run(args, io) {
    // A ConfigError reaches runCli, which prints it as a usage error.
    const config = loadConfig(args, io.env);
    // Loaded here, not at import: the network plane loads the FFI (koffi, libc) for the TAP
    // ioctls, which the other commands (list, --help...) have no use for.
    const { runDaemon } = await import("./run-daemon.js");
    return runDaemon(config, createLogger(config.logLevel), io.signal);
  },
};
