import test from "ava";
import { ResourceStatus } from "../gen/common/common_pb.js";
import { Protocol } from "../gen/rik/network/v1/workload_network_pb.js";
import type { InstanceStatus } from "../network/model/instance-network.js";
import { functionNetwork } from "../../test/fixtures/function-network.js";
import { toInstanceNetworkMessage } from "./to-instance-network-message.js";

const running = functionNetwork("fn-1", "running", [
  { protocol: "tcp", hostPort: 8080, guestPort: 80 },
  { protocol: "udp", hostPort: 5353, guestPort: 53, hostIp: "192.0.2.10" },
]);

test("maps a Function network field by field, with its oneof case set", (t) => {
  const message = toInstanceNetworkMessage(running);
  t.is(message.instanceId, "fn-1");
  t.is(message.kind, "Function");
  t.is(message.status, ResourceStatus.RUNNING);
  t.is(message.network.case, "function");
  const fn = message.network.value;
  t.like(fn, {
    tapName: "rik-tap-0",
    hostIp: "10.220.0.1",
    guestIp: "10.220.0.2",
    prefixLength: 30,
    mask: "255.255.255.252",
    guestMac: "02:fc:0a:dc:00:02",
    mtu: 1500,
    bootArg: "ip=10.220.0.2::10.220.0.1:255.255.255.252::eth0:off",
  });
  t.deepEqual(
    fn?.ports.map(({ protocol, hostPort, guestPort, hostIp }) => ({ protocol, hostPort, guestPort, hostIp })),
    [
      { protocol: Protocol.TCP, hostPort: 8080, guestPort: 80, hostIp: "" },
      { protocol: Protocol.UDP, hostPort: 5353, guestPort: 53, hostIp: "192.0.2.10" },
    ],
  );
});

test("leaves the oneof unset for an instance without a network", (t) => {
  const message = toInstanceNetworkMessage({ instanceId: "gone", kind: "", status: "terminated" });
  t.is(message.network.case, undefined);
  t.is(message.status, ResourceStatus.TERMINATED);
});

const statuses: [InstanceStatus, ResourceStatus][] = [
  ["creating", ResourceStatus.CREATING],
  ["running", ResourceStatus.RUNNING],
  ["destroying", ResourceStatus.DESTROYING],
  ["terminated", ResourceStatus.TERMINATED],
  ["failed", ResourceStatus.FAILED],
];

for (const [status, expected] of statuses) {
  test(`status ${status} becomes ${ResourceStatus[expected]}`, (t) => {
    t.is(toInstanceNetworkMessage({ ...running, status }).status, expected);
  });
}
