import { callService } from "./call-service.js";
import type { CliCommand } from "./cli-command.js";
import { clientFlags, clientFlagsUsage, clientSettings } from "./client-flags.js";
import { parseCommandLine } from "./parse-command-line.js";

const healthFlags = { ...clientFlags, service: { type: "string" } } as const;

export const healthCommand: CliCommand = {
  name: "health",
  summary: "check that the service answers and is serving",
  usage: `Usage: rik-network health [options]

Asks the standard health service (grpc.health.v1.Health/Check) and prints its status.
Exits 0 when SERVING, 1 otherwise (NOT_SERVING while shutting down, or unreachable).

  --service NAME       a service's own status (e.g. rik.network.v1.WorkloadNetwork)
                       instead of the whole server's

${clientFlagsUsage()}`,

  async run(args, io) {
    const { values } = parseCommandLine(args, healthFlags);
    const settings = await clientSettings(values);
    const { status } = await callService(settings, (service) =>
      service.unary<{ status: string }>((options, callback) =>
        service.health().check({ service: values.service ?? "" }, options, callback),
      ),
    );
    io.stdout.write(settings.json ? `${JSON.stringify({ status }, null, 2)}\n` : `${status}\n`);
    return status === "SERVING" ? 0 : 1;
  },
};
