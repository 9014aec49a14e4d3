import { create, type MessageInitShape } from "@bufbuild/protobuf";
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

/** The kind's own part of the wire form: the `network` oneof. */
function networkOf(network: InstanceNetwork): MessageInitShape<typeof InstanceNetworkSchema>["network"] {
  switch (network.kind) {
    case "Function": {
      const fn = network.function;
      return {
        case: "function",
        value: {
          tapName: fn.tapName,
          hostIp: fn.hostIp,
          guestIp: fn.guestIp,
          prefixLength: fn.prefixLength,
          mask: fn.mask,
          guestMac: fn.guestMac,
          mtu: fn.mtu,
          ports: fn.ports.map((port) => ({
            protocol: protocolMessageByProtocol[port.protocol],
            hostPort: port.hostPort,
            guestPort: port.guestPort,
            hostIp: port.hostIp ?? "",
          })),
          bootArg: fn.bootArg,
        },
      };
    }
    case "":
      return { case: undefined };
  }
}

/** The wire form of one instance's network (`rik.network.v1.InstanceNetwork`). */
export function toInstanceNetworkMessage(network: InstanceNetwork): InstanceNetworkMessage {
  return create(InstanceNetworkSchema, {
    instanceId: network.instanceId,
    kind: network.kind,
    status: resourceStatusByInstanceStatus[network.status],
    network: networkOf(network),
  });
}
