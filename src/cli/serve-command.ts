import { loadConfig, usage } from "../config/index.js";
import { createLogger } from "../logger.js";
import type { CliCommand } from "./cli-command.js";
import { runDaemon } from "./run-daemon.js";

export const serveCommand: CliCommand = {
  name: "serve",
  summary: "run the network plane daemon (the default command)",
  usage,
  async run(args, io) {
    // A ConfigError reaches runCli, which prints it as a usage error.
    const config = loadConfig(args, io.env);
    return runDaemon(config, createLogger(config.logLevel), io.signal);
  },
};
