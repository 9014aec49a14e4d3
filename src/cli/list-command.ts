import { ListResponseSchema, type ListResponse } from "../gen/rik/network/v1/workload_network_pb.js";
import { callService } from "./call-service.js";
import type { CliCommand } from "./cli-command.js";
import { clientFlags, clientFlagsUsage, clientSettings } from "./client-flags.js";
import { networksTable } from "./describe-network.js";
import { parseCommandLine } from "./parse-command-line.js";
import { writeResponse } from "./write-response.js";

export const listCommand: CliCommand = {
  name: "list",
  summary: "list the instances of the node and their networks",
  usage: `Usage: rik-network list [options]

Lists every instance of the node (rik.network.v1.WorkloadNetwork/List), a row each.

${clientFlagsUsage()}`,

  async run(args, io) {
    const { values } = parseCommandLine(args, clientFlags);
    const settings = await clientSettings(values);
    const response = await callService(settings, (service) =>
      service.unary<ListResponse>((options, callback) => service.workload().list({}, options, callback)),
    );
    writeResponse(io, settings.json, ListResponseSchema, response, ({ networks }) =>
      networks.length === 0 ? "no instances on this node\n" : networksTable(networks),
    );
    return 0;
  },
};
