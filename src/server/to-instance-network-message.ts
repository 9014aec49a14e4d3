import { create } from "@bufbuild/protobuf";
import { ResourceStatus } from "../gen/common/common_pb.js";
import {
  InstanceNetworkSchema,
  Protocol as ProtocolMessage,
  type InstanceNetwork as InstanceNetworkMessage,
} from "../gen/rik/network/v1/workload_network_pb.js";
import type { InstanceNetwork, InstanceStatus, Protocol } from "../network/model/instance-network.js";

const resourceStatusByInstanceStatus: Readonly<Record<InstanceStatus, ResourceStatus>> = {
  creating: ResourceStatus.CREATING,
  running: ResourceStatus.RUNNING,
  destroying: ResourceStatus.DESTROYING,
  terminated: ResourceStatus.TERMINATED,
  failed: ResourceStatus.FAILED,
};

const protocolMessageByProtocol: Readonly<Record<Protocol, ProtocolMessage>> = {
  tcp: ProtocolMessage.TCP,
  udp: ProtocolMessage.UDP,
};

/** The wire form of one instance's network (`rik.network.v1.InstanceNetwork`). */
export function toInstanceNetworkMessage(network: InstanceNetwork): InstanceNetworkMessage {
  return create(InstanceNetworkSchema, {
    instanceId: network.instanceId,
    kind: network.kind,
    status: resourceStatusByInstanceStatus[network.status],
    network:
      network.function === undefined
        ? { case: undefined }
        : {
            case: "function",
            value: {
              tapName: network.function.tapName,
              hostIp: network.function.hostIp,
              guestIp: network.function.guestIp,
              prefixLength: network.function.prefixLength,
              mask: network.function.mask,
              guestMac: network.function.guestMac,
              mtu: network.function.mtu,
              ports: network.function.ports.map((port) => ({
                protocol: protocolMessageByProtocol[port.protocol],
                hostPort: port.hostPort,
                guestPort: port.guestPort,
                hostIp: port.hostIp ?? "",
              })),
              bootArg: network.function.bootArg,
            },
          },
  });
}
