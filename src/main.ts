#!/usr/bin/env node
import { runCli } from "./cli/index.js";

// Deprecation warnings are for this program's developers, not for whoever reads its
// stderr (grpc-js triggers one for every TLS connection to an IP address).
process.noDeprecation = true;

// The first SIGINT/SIGTERM asks the command to stop (the daemon shuts down gracefully,
// watch ends); a second one, while it is still stopping, exits at once.
const interrupt = new AbortController();
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (!interrupt.signal.aborted) {
      interrupt.abort(signal);
      return;
    }
    process.stderr.write(`rik-network: second ${signal} while stopping; exiting now\n`);
    process.exit(1);
  });
}

runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  signal: interrupt.signal,
}).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`rik-network: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
