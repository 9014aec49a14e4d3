import { ResourceStatus } from "../gen/common/common_pb.js";
import { Protocol, type FunctionNetwork, type InstanceNetwork } from "../gen/rik/network/v1/workload_network_pb.js";
import { formatFields, formatTable } from "./format-table.js";

/** The enum value's name, e.g. RUNNING, or its number if this build does not know it. */
export function statusName(status: ResourceStatus): string {
  return ResourceStatus[status] ?? String(status);
}

/** `8080->3000/tcp, 192.0.2.10:5353->53/udp`, or `-` for egress only. */
export function portsText(fn: FunctionNetwork | undefined): string {
  if (fn === undefined || fn.ports.length === 0) return "-";
  return fn.ports
    .map((port) => `${port.hostIp === "" ? "" : `${port.hostIp}:`}${port.hostPort}->${port.guestPort}/${(Protocol[port.protocol] ?? String(port.protocol)).toLowerCase()}`)
    .join(", ");
}

const columns = ["INSTANCE", "KIND", "STATUS", "TAP", "GUEST IP", "GATEWAY", "GUEST MAC", "PORTS"];

/** One row per instance, as `list` prints them. */
export function networksTable(networks: readonly InstanceNetwork[]): string {
  return formatTable(
    columns,
    networks.map((network) => {
      const fn = network.network.value;
      return [
        network.instanceId,
        network.kind || "-",
        statusName(network.status),
        fn?.tapName ?? "-",
        fn === undefined ? "-" : `${fn.guestIp}/${fn.prefixLength}`,
        fn?.hostIp ?? "-",
        fn?.guestMac ?? "-",
        portsText(fn),
      ];
    }),
  );
}

/** Everything about one instance, a field a line, as `get` and `apply` print it. */
export function describeNetwork(network: InstanceNetwork): string {
  const fn = network.network.value;
  const fields: [string, string][] = [
    ["instance", network.instanceId],
    ["kind", network.kind || "-"],
    ["status", statusName(network.status)],
  ];
  if (fn !== undefined) {
    fields.push(
      ["tap", fn.tapName],
      ["guest ip", `${fn.guestIp}/${fn.prefixLength}`],
      ["gateway", fn.hostIp],
      ["mask", fn.mask],
      ["guest mac", fn.guestMac],
      ["mtu", String(fn.mtu)],
      ["ports", portsText(fn)],
      ["boot arg", fn.bootArg],
    );
  }
  return formatFields(fields);
}
