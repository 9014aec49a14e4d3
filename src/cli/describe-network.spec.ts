import test from "ava";
import { create } from "@bufbuild/protobuf";
import { ResourceStatus, WorkerStatusSchema } from "../gen/common/common_pb.js";
import { InstanceNetworkSchema, Protocol } from "../gen/rik/network/v1/workload_network_pb.js";
import { describeNetwork, networksTable } from "./describe-network.js";
import { formatTable } from "./format-table.js";
import { watchLine } from "./watch-command.js";

const running = create(InstanceNetworkSchema, {
  instanceId: "fn-1",
  kind: "Function",
  status: ResourceStatus.RUNNING,
  network: {
    case: "function",
    value: {
      tapName: "rikaaaabbbbcccc",
      hostIp: "10.220.0.1",
      guestIp: "10.220.0.2",
      prefixLength: 30,
      mask: "255.255.255.252",
      guestMac: "02:00:00:00:00:01",
      mtu: 1500,
      ports: [
        { protocol: Protocol.TCP, hostPort: 8080, guestPort: 3000 },
        { protocol: Protocol.UDP, hostPort: 5353, guestPort: 53, hostIp: "192.0.2.10" },
      ],
      bootArg: "ip=10.220.0.2::10.220.0.1:255.255.255.252::eth0:off",
    },
  },
});
const terminated = create(InstanceNetworkSchema, { instanceId: "gone", status: ResourceStatus.TERMINATED });

test("formatTable aligns columns two spaces apart, without trailing spaces", (t) => {
  t.is(formatTable(["A", "LONG HEADER", "C"], [["xyz", "1", ""], ["x", "22", "end"]]), "A    LONG HEADER  C\nxyz  1\nx    22           end\n");
});

test("list prints a row per instance, with - for what an instance does not have", (t) => {
  t.is(
    networksTable([running, terminated]),
    [
      "INSTANCE  KIND      STATUS      TAP              GUEST IP       GATEWAY     GUEST MAC          PORTS",
      "fn-1      Function  RUNNING     rikaaaabbbbcccc  10.220.0.2/30  10.220.0.1  02:00:00:00:00:01  8080->3000/tcp, 192.0.2.10:5353->53/udp",
      "gone      -         TERMINATED  -                -              -           -                  -",
      "",
    ].join("\n"),
  );
});

test("get and apply print every field of the instance, a field a line", (t) => {
  t.is(
    describeNetwork(running),
    [
      "instance:   fn-1",
      "kind:       Function",
      "status:     RUNNING",
      "tap:        rikaaaabbbbcccc",
      "guest ip:   10.220.0.2/30",
      "gateway:    10.220.0.1",
      "mask:       255.255.255.252",
      "guest mac:  02:00:00:00:00:01",
      "mtu:        1500",
      "ports:      8080->3000/tcp, 192.0.2.10:5353->53/udp",
      "boot arg:   ip=10.220.0.2::10.220.0.1:255.255.255.252::eth0:off",
      "",
    ].join("\n"),
  );
  t.is(describeNetwork(terminated), "instance:  gone\nkind:      -\nstatus:    TERMINATED\n");
});

test("watch prints one line per event, with the network from the metrics JSON", (t) => {
  const now = new Date("2026-01-02T03:04:05.678Z");
  const event = create(WorkerStatusSchema, {
    identifier: "node-a",
    status: { case: "instance", value: { instanceId: "fn-1", status: ResourceStatus.RUNNING, metrics: '{"function":{"tapName":"rikaaaabbbbcccc","guestIp":"10.220.0.2","prefixLength":30,"ports":[{"protocol":"PROTOCOL_TCP","hostPort":8080,"guestPort":3000}]}}' } },
  });
  t.is(watchLine(event, now), "2026-01-02T03:04:05.678Z  node-a  fn-1  RUNNING  tap=rikaaaabbbbcccc guest=10.220.0.2/30 ports=8080->3000/tcp\n");
  const bare = create(WorkerStatusSchema, { identifier: "node-a", status: { case: "instance", value: { instanceId: "fn-1", status: ResourceStatus.FAILED, metrics: "not json" } } });
  t.is(watchLine(bare, now), "2026-01-02T03:04:05.678Z  node-a  fn-1  FAILED\n");
});
