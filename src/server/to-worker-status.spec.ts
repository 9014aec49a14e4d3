import test from "ava";
import { ResourceStatus } from "../gen/common/common_pb.js";
import { functionNetwork } from "../../test/fixtures/function-network.js";
import { toWorkerStatus } from "./to-worker-status.js";

const network = functionNetwork("fn-1", "creating");

test("wraps the instance in a WorkerStatus identified by the node's name", (t) => {
  const status = toWorkerStatus(network, "node-a");
  t.is(status.identifier, "node-a");
  t.is(status.status.case, "instance");
  t.like(status.status.value, { instanceId: "fn-1", status: ResourceStatus.CREATING });
});

test("metrics holds the network as proto JSON, with proto JSON names and enum names", (t) => {
  const status = toWorkerStatus(network, "node-a");
  t.deepEqual(JSON.parse(status.status.value?.metrics ?? ""), {
    instanceId: "fn-1",
    kind: "Function",
    status: "CREATING",
    function: {
      tapName: "rik-tap-0",
      hostIp: "10.220.0.1",
      guestIp: "10.220.0.2",
      prefixLength: 30,
      mask: "255.255.255.252",
      guestMac: "02:fc:0a:dc:00:02",
      mtu: 1500,
      ports: [{ protocol: "PROTOCOL_TCP", hostPort: 8080, guestPort: 80 }],
      bootArg: "ip=10.220.0.2::10.220.0.1:255.255.255.252::eth0:off",
    },
  });
});
