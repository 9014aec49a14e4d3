import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { WorkerStatusSchema, type WorkerStatus } from "../gen/common/common_pb.js";
import { InstanceNetworkSchema } from "../gen/rik/network/v1/workload_network_pb.js";
import { callService } from "./call-service.js";
import type { CliCommand } from "./cli-command.js";
import { clientFlags, clientFlagsUsage, clientSettings } from "./client-flags.js";
import { portsText, statusName } from "./describe-network.js";
import { parseCommandLine } from "./parse-command-line.js";

/** A stream has no deadline: every client flag but --timeout. */
const { timeout: _timeout, ...watchFlags } = clientFlags;

/** `TIME  NODE  INSTANCE  STATUS  tap=... guest=... ports=...`: one line per event. */
export function watchLine(event: WorkerStatus, now = new Date()): string {
  const parts = [now.toISOString(), event.identifier || "-"];
  if (event.status.case !== "instance") return `${[...parts, event.status.case ?? "(empty)"].join("  ")}\n`;
  const instance = event.status.value;
  parts.push(instance.instanceId, statusName(instance.status));
  try {
    const network = fromJsonString(InstanceNetworkSchema, instance.metrics, { ignoreUnknownFields: true });
    const fn = network.network.value;
    if (fn !== undefined) parts.push(`tap=${fn.tapName} guest=${fn.guestIp}/${fn.prefixLength} ports=${portsText(fn)}`);
  } catch {
    // metrics from another producer: the status alone says what happened
  }
  return `${parts.join("  ")}\n`;
}

export const watchCommand: CliCommand = {
  name: "watch",
  summary: "print a line per instance change, until interrupted",
  usage: `Usage: rik-network watch [options]

Follows rik.network.v1.WorkloadNetwork/Watch: a line for each instance the node has, then
a line for each change (CREATING, RUNNING, DESTROYING, TERMINATED, FAILED), until Ctrl-C
(exit 0) or until the service ends the stream (exit 1, e.g. UNAVAILABLE when it stops).
With --json, each line is a common.WorkerStatus in proto JSON.

${clientFlagsUsage({ streaming: true })}`,

  async run(args, io) {
    const { values } = parseCommandLine(args, watchFlags);
    const settings = await clientSettings(values);
    return callService(
      settings,
      (service) =>
        new Promise<number>((resolve, reject) => {
          const stream = service.workload().watch({});
          const stop = (): void => stream.cancel();
          io.signal.addEventListener("abort", stop, { once: true });
          const settle = (): void => io.signal.removeEventListener("abort", stop);
          stream.on("metadata", () => {
            if (!settings.json) io.stderr.write(`watching ${settings.target}; Ctrl-C to stop\n`);
          });
          stream.on("data", (event: WorkerStatus) => {
            io.stdout.write(settings.json ? `${toJsonString(WorkerStatusSchema, event)}\n` : watchLine(event));
          });
          stream.on("status", (status: grpc.StatusObject) => {
            if (status.code !== grpc.status.OK) return;
            settle();
            resolve(0);
          });
          stream.on("error", (error: grpc.ServiceError) => {
            settle();
            if (error.code === grpc.status.CANCELLED && io.signal.aborted) resolve(0);
            else reject(error);
          });
          if (io.signal.aborted) stop();
        }),
    );
  },
};
