/**
 * The host-port policy of issue #4, through gRPC: ports outside `--host-ports`, reserved
 * ports (22, `--reserved-ports`, the service's own listeners) are INVALID_ARGUMENT naming the
 * port policy; a port that a socket of the node already holds is FAILED_PRECONDITION. Every
 * refusal leaves the node byte-identical (`ip -j link`, `iptables-save`, `nft list ruleset`), as in bad-input.
 */
import test, { type ExecutionContext } from "ava";
import * as grpc from "@grpc/grpc-js";
import { startHttpServer } from "./helpers/guest-relay.js";
import { hostState } from "./helpers/host-state.js";
import { firewallState, NO_FIREWALL } from "./helpers/kernel-state.js";
import { Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { startNode } from "./helpers/start-node.js";
import { startUdpEcho } from "./helpers/udp-echo.js";
import { failureOf, functionDefinition, type PortExposure, type WorkloadClient } from "./helpers/workload-client.js";

const { INVALID_ARGUMENT, FAILED_PRECONDITION } = grpc.status;

interface Refusal {
  readonly exposure: PortExposure;
  readonly code: grpc.status;
  readonly details: RegExp;
}

/** CREATEs each refused exposure in turn: its code, its message, and no change on the node. */
async function assertRefusals(
  t: ExecutionContext,
  topology: Topology,
  client: WorkloadClient,
  refusals: readonly Refusal[],
): Promise<void> {
  for (const [index, refusal] of refusals.entries()) {
    const what = `${refusal.exposure.port}/${refusal.exposure.protocol ?? "TCP"}`;
    const before = await hostState(topology);
    const failure = await failureOf(client.create(`refused-${index}`, functionDefinition({ exposure: refusal.exposure })));
    t.is(failure.code, refusal.code, `${what}: ${grpc.status[failure.code]} ${failure.details}`);
    t.regex(failure.details, refusal.details, what);
    t.deepEqual(await hostState(topology), before, `${what} changed the node`);
  }
}

/** CREATE then DESTROY: the port is allowed. */
async function assertAccepted(t: ExecutionContext, client: WorkloadClient, exposure: PortExposure): Promise<void> {
  const what = `${exposure.port}/${exposure.protocol ?? "TCP"}`;
  const network = await client.create("accepted", functionDefinition({ exposure })).catch((error: grpc.ServiceError) => {
    throw new Error(`${what} was refused: ${grpc.status[error.code]} ${error.details}`);
  });
  t.is(network.network.value?.ports[0]?.hostPort, exposure.port, what);
  await client.destroy("accepted");
}

const policy = /port policy/;

test("default policy: 22 and the metrics port 9464 are reserved, ports from 32768 on are outside 1-32767", async (t) => {
  const { topology, client } = await startNode(t);
  await assertRefusals(t, topology, client, [
    { exposure: { port: 22, targetPort: 22 }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 9464, targetPort: 80 }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 32768, targetPort: 80 }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 60999, targetPort: 80, protocol: "UDP" }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 65535, targetPort: 80 }, code: INVALID_ARGUMENT, details: policy },
  ]);
  // The edges of the default range are allowed.
  await assertAccepted(t, client, { port: 1, targetPort: 80 });
  await assertAccepted(t, client, { port: 32767, targetPort: 80 });
});

test("--host-ports and --reserved-ports narrow the policy; the service's own --metrics-listen and --listen ports are always reserved", async (t) => {
  const { topology, client } = await startNode(t, {
    service: {
      extraArgs: [
        "--host-ports", "8000-9999",
        "--reserved-ports", "8022,8023",
        "--metrics-listen", "127.0.0.1:8900",
        "--listen", "127.0.0.1:8901",
        "--insecure-tcp",
      ],
    },
  });
  await assertRefusals(t, topology, client, [
    { exposure: { port: 10_000, targetPort: 80 }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 7999, targetPort: 80 }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 10_500, targetPort: 80, protocol: "UDP" }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 22, targetPort: 22 }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 8022, targetPort: 22 }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 8023, targetPort: 23 }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 8900, targetPort: 80 }, code: INVALID_ARGUMENT, details: policy },
    { exposure: { port: 8901, targetPort: 80 }, code: INVALID_ARGUMENT, details: policy },
  ]);
  await assertAccepted(t, client, { port: 8000, targetPort: 80 });
  await assertAccepted(t, client, { port: 9999, targetPort: 80, protocol: "UDP" });
  // 9464 is reserved as the default metrics port: with the metrics moved away it is an ordinary port.
  await assertAccepted(t, client, { port: 9464, targetPort: 80 });
});

test("a host port a socket of the node already holds is FAILED_PRECONDITION: a TCP listener, a bound UDP socket", async (t) => {
  const { topology, client } = await startNode(t);

  // Step 1: processes of the node itself: a TCP listener on every address, one on loopback only,
  // and a bound (unconnected) UDP socket.
  await startHttpServer(topology.node, 8500, "the node's own TCP service");
  await startHttpServer(topology.node, 8501, "the node's own loopback service", { host: "127.0.0.1" });
  await startUdpEcho(topology.node, 8600, "the node's own UDP service");

  // Step 2: exposing those ports is refused, and the node is left as it was.
  const inUse = /already in use|listening/;
  await assertRefusals(t, topology, client, [
    { exposure: { port: 8500, targetPort: 80 }, code: FAILED_PRECONDITION, details: inUse },
    { exposure: { port: 8501, targetPort: 80 }, code: FAILED_PRECONDITION, details: inUse },
    { exposure: { port: 8600, targetPort: 53, protocol: "UDP" }, code: FAILED_PRECONDITION, details: inUse },
  ]);

  // Step 3: the other protocol of each port is free, so it can be exposed.
  await assertAccepted(t, client, { port: 8500, targetPort: 53, protocol: "UDP" });
  await assertAccepted(t, client, { port: 8600, targetPort: 80 });
});

test("an invalid --host-ports, --reserved-ports or --mtu stops the service before it touches the node, naming the flag", async (t) => {
  const topology = await Topology.create({ teardown: t });
  for (const [flag, value] of [
    ["--host-ports", "9000-8000"],
    ["--host-ports", "0-100"],
    ["--reserved-ports", "22,x"],
    ["--reserved-ports", "70000"],
    ["--mtu", "big"],
  ] as const) {
    const error = await t.throwsAsync(startService({ nodeNs: topology.node, extraArgs: [flag, value] }), undefined, `${flag} ${value}`);
    t.regex(error?.message ?? "", new RegExp(flag), `${flag} ${value}`);
  }
  t.deepEqual(await firewallState(topology.node), NO_FIREWALL, "nothing was set up");
});
