import { GetResponseSchema, type GetResponse } from "../gen/rik/network/v1/workload_network_pb.js";
import { callService } from "./call-service.js";
import type { CliCommand } from "./cli-command.js";
import { clientFlags, clientFlagsUsage, clientSettings } from "./client-flags.js";
import { describeNetwork } from "./describe-network.js";
import { parseCommandLine } from "./parse-command-line.js";
import { writeResponse } from "./write-response.js";

export const getCommand: CliCommand = {
  name: "get",
  summary: "show the network of one instance",
  usage: `Usage: rik-network get INSTANCE_ID [options]

Shows the network of one instance (rik.network.v1.WorkloadNetwork/Get): its status, TAP,
addresses, MAC, ports and the kernel boot argument. Fails with NOT_FOUND for an instance
the node does not have.

${clientFlagsUsage()}`,

  async run(args, io) {
    const { values, positionals } = parseCommandLine(args, clientFlags, ["INSTANCE_ID"]);
    const settings = await clientSettings(values);
    const response = await callService(settings, (service) =>
      service.unary<GetResponse>((options, callback) => service.workload().get({ instanceId: positionals[0] }, options, callback)),
    );
    writeResponse(io, settings.json, GetResponseSchema, response, ({ network }) =>
      network === undefined ? "" : describeNetwork(network),
    );
    return 0;
  },
};
