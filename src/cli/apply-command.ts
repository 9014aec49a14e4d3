import { readFile } from "node:fs/promises";
import { WorkloadRequestKind } from "../gen/common/common_pb.js";
import { ApplyResponseSchema, type ApplyResponse } from "../gen/rik/network/v1/workload_network_pb.js";
import { callService } from "./call-service.js";
import type { CliCommand } from "./cli-command.js";
import type { CliIo } from "./cli-io.js";
import { CliUsageError } from "./cli-usage-error.js";
import { clientFlags, clientFlagsUsage, clientSettings, type ClientFlagValues } from "./client-flags.js";
import { describeNetwork } from "./describe-network.js";
import { parseCommandLine } from "./parse-command-line.js";
import { writeResponse } from "./write-response.js";

const applyFlags = {
  ...clientFlags,
  file: { type: "string", short: "f" },
  id: { type: "string" },
  destroy: { type: "boolean" },
} as const;

async function readDefinition(path: string, io: CliIo): Promise<string> {
  if (path === "-") {
    let text = "";
    for await (const chunk of io.stdin) text += chunk.toString();
    return text;
  }
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new CliUsageError(`cannot read the workload file ${path}: ${(error as Error).message}`);
  }
}

/** Sends one Apply and prints its answer; `apply` and `destroy` both end here. */
export async function applyAndPrint(
  io: CliIo,
  flags: ClientFlagValues,
  request: { instanceId: string; definition: string; action: WorkloadRequestKind },
): Promise<number> {
  const settings = await clientSettings(flags);
  const response = await callService(settings, (service) =>
    service.unary<ApplyResponse>((options, callback) => service.workload().apply(request, options, callback)),
  );
  writeResponse(io, settings.json, ApplyResponseSchema, response, ({ network }) =>
    network === undefined ? "" : describeNetwork(network),
  );
  return 0;
}

export const applyCommand: CliCommand = {
  name: "apply",
  summary: "create (or with --destroy, tear down) an instance's network from its workload",
  usage: `Usage: rik-network apply -f WORKLOAD.json --id INSTANCE_ID [--destroy] [options]

Sends a worker.InstanceScheduling to rik.network.v1.WorkloadNetwork/Apply: CREATE sets the
instance's network up and prints it (what the VMM needs); the same CREATE again prints the
same network. With --destroy, tears it down (the workload file is then optional).

  -f, --file FILE      RIK's JSON workload definition, or - for the standard input
  --id INSTANCE_ID     the instance's id: 1 to 128 of A-Z a-z 0-9 . _ -
  --destroy            DESTROY instead of CREATE

${clientFlagsUsage()}`,

  async run(args, io) {
    const { values } = parseCommandLine(args, applyFlags);
    if (values.id === undefined) throw new CliUsageError("--id INSTANCE_ID is required");
    const destroy = values.destroy === true;
    if (values.file === undefined && !destroy) {
      throw new CliUsageError("-f WORKLOAD.json is required to create (use -f - for the standard input)");
    }
    const definition = values.file === undefined ? "" : await readDefinition(values.file, io);
    return applyAndPrint(io, values, {
      instanceId: values.id,
      definition,
      action: destroy ? WorkloadRequestKind.DESTROY : WorkloadRequestKind.CREATE,
    });
  },
};
