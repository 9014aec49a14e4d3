#!/usr/bin/env node
import { ConfigError, loadConfig, usage, type Config } from "./config/index.js";
import { createLogger, type Logger } from "./logger.js";
import { createNetworkPlane } from "./network/index.js";
import { claimSocketPath, createServer } from "./server/index.js";

/** Exit code of a command-line mistake, as opposed to 1 for a failure at run time. */
const usageExitCode = 2;

function errorFields(error: unknown): { error: string; stack?: string } {
  return error instanceof Error ? { error: error.message, stack: error.stack } : { error: String(error) };
}

async function main(argv: readonly string[]): Promise<void> {
  const [first, ...rest] = argv;
  const command = first === undefined || first.startsWith("-") ? "serve" : first;
  const flags = command === first ? rest : argv;
  if (flags.includes("--help") || flags.includes("-h")) {
    process.stdout.write(usage);
    return;
  }
  if (command !== "serve") {
    process.stderr.write(`rik-network: unknown command "${command}"\n\n${usage}`);
    process.exit(usageExitCode);
  }
  let config: Config;
  try {
    config = loadConfig(flags, process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`rik-network: ${error.message}\nRun "rik-network --help" for usage.\n`);
    process.exit(usageExitCode);
  }
  await serve(config, createLogger(config.logLevel));
}

async function serve(config: Config, logger: Logger): Promise<void> {
  process.on("uncaughtException", (error) => {
    logger.error("uncaught exception", errorFields(error));
    process.exit(1);
  });
  process.on("unhandledRejection", (reason) => {
    logger.error("unhandled rejection", errorFields(reason));
    process.exit(1);
  });

  // Before the kernel is touched: a second daemon on the same socket must change nothing.
  await claimSocketPath(config.socketPath).catch((error: unknown) => {
    logger.error("cannot serve on the socket", errorFields(error));
    process.exit(1);
  });
  const plane = await createNetworkPlane({ pool: config.pool, mtu: config.mtu, logger }).catch((error: unknown) => {
    logger.error("cannot set up the network plane", errorFields(error));
    process.exit(1);
  });
  const server = createServer({
    plane,
    nodeName: config.nodeName,
    logger,
    socketPath: config.socketPath,
    listen: config.listen,
  });
  const addresses = await server.start().catch(async (error: unknown) => {
    logger.error("cannot start the gRPC server", errorFields(error));
    await plane.close();
    process.exit(1);
  });
  logger.info("ready", {
    socket_path: addresses.socketPath,
    tcp_port: addresses.tcpPort,
    node_name: config.nodeName,
    pool: config.pool,
    mtu: config.mtu,
    pid: process.pid,
  });

  let stopping = false;
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) {
      logger.warn("second signal during shutdown; exiting now", { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info("stopping", { signal });
    await server.shutdown();
    await plane.close();
    // Guests keep their connectivity while the service is down; a restart picks the state up again.
    logger.info("stopped; instance networks are left in the kernel");
    process.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      stop(signal).catch((error: unknown) => {
        logger.error("shutdown failed", errorFields(error));
        process.exit(1);
      });
    });
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`rik-network: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
