import { create, toJsonString } from "@bufbuild/protobuf";
import { WorkerStatusSchema, type WorkerStatus } from "../gen/common/common_pb.js";
import { InstanceNetworkSchema } from "../gen/rik/network/v1/workload_network_pb.js";
import type { InstanceNetwork } from "../network/model/instance-network.js";
import { toInstanceNetworkMessage } from "./to-instance-network-message.js";

/**
 * One Watch message, in the shape RIK's scheduler already consumes from workers:
 * the instance's status, and its whole network as proto JSON in `metrics`.
 */
export function toWorkerStatus(network: InstanceNetwork, nodeName: string): WorkerStatus {
  const message = toInstanceNetworkMessage(network);
  return create(WorkerStatusSchema, {
    identifier: nodeName,
    status: {
      case: "instance",
      value: {
        instanceId: message.instanceId,
        status: message.status,
        metrics: toJsonString(InstanceNetworkSchema, message),
      },
    },
  });
}
