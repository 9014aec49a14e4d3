import { WorkloadRequestKind } from "../gen/common/common_pb.js";
import { applyAndPrint } from "./apply-command.js";
import type { CliCommand } from "./cli-command.js";
import { clientFlags, clientFlagsUsage } from "./client-flags.js";
import { parseCommandLine } from "./parse-command-line.js";

export const destroyCommand: CliCommand = {
  name: "destroy",
  summary: "tear an instance's network down (TAP, rules, /30)",
  usage: `Usage: rik-network destroy INSTANCE_ID [options]

Tears the instance's network down: Apply with action DESTROY, the same as
"rik-network apply --id INSTANCE_ID --destroy". Succeeds for an instance the node does
not have, so it is safe to repeat.

${clientFlagsUsage()}`,

  async run(args, io) {
    const { values, positionals } = parseCommandLine(args, clientFlags, ["INSTANCE_ID"]);
    return applyAndPrint(io, values, { instanceId: positionals[0] ?? "", definition: "", action: WorkloadRequestKind.DESTROY });
  },
};
