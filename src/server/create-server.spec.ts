import test, { type ExecutionContext } from "ava";
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ResourceStatus, WorkloadRequestKind, type WorkerStatus } from "../gen/common/common_pb.js";
import type { ApplyResponse, GetResponse, ListResponse } from "../gen/rik/network/v1/workload_network_pb.js";
import type { ApplyRequest, InstanceNetwork } from "../network/model/instance-network.js";
import { NetworkError, type NetworkErrorCode } from "../network/model/network-error.js";
import type { NetworkPlane } from "../network/plane/network-plane.js";
import { createWorkloadNetworkClient, type WorkloadNetworkClient } from "./create-client.js";
import { functionNetwork } from "../../test/fixtures/function-network.js";
import { captureLogger } from "../../test/helpers/capture-logger.js";
import { checkHealth, createHealthClient } from "../../test/helpers/health-client.js";
import { ReflectionClient } from "../../test/helpers/reflection-client.js";
import { createServer, maxReceiveMessageBytes, type CreateServerOptions, type WorkloadNetworkServer } from "./create-server.js";

/** In memory: this file tests the gRPC edge, not the kernel. */
class FakePlane implements NetworkPlane {
  stats() {
    return { poolSize: 64, poolUsed: this.networks.size, strategies: {} };
  }

  readonly networks = new Map<string, InstanceNetwork>();
  readonly requests: ApplyRequest[] = [];
  readonly listeners = new Set<(network: InstanceNetwork) => void>();
  /** Replaces the default apply, e.g. to fail or to block. */
  applyHook: ((request: ApplyRequest) => Promise<InstanceNetwork>) | undefined;

  async apply(request: ApplyRequest): Promise<InstanceNetwork> {
    this.requests.push(request);
    const network = this.applyHook
      ? await this.applyHook(request)
      : functionNetwork(request.instanceId, request.action === "create" ? "running" : "terminated");
    this.change(network);
    return network;
  }

  get(instanceId: string): InstanceNetwork {
    const network = this.networks.get(instanceId);
    if (network === undefined) throw new NetworkError("not-found", `no network for instance ${instanceId}`);
    return network;
  }

  list(): InstanceNetwork[] {
    return [...this.networks.values()];
  }

  subscribe(listener: (network: InstanceNetwork) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  change(network: InstanceNetwork): void {
    this.networks.set(network.instanceId, network);
    for (const listener of this.listeners) listener(network);
  }
}


interface Harness {
  readonly plane: FakePlane;
  readonly socketPath: string;
  readonly server: WorkloadNetworkServer;
  readonly client: WorkloadNetworkClient;
  readonly tcpPort: number | undefined;
  /** Every log entry the server wrote. */
  readonly logs: Record<string, unknown>[];
}

async function temporaryDirectory(t: ExecutionContext): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), "rik-network-server-"));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

async function startServer(
  t: ExecutionContext,
  options: Partial<CreateServerOptions> & { plane?: FakePlane } = {},
): Promise<Harness> {
  const plane = options.plane ?? new FakePlane();
  const socketPath = options.socketPath ?? join(await temporaryDirectory(t), "run", "rik-network.sock");
  const { logger, lines: logs } = captureLogger();
  const server = createServer({ nodeName: "node-a", logger, ...options, plane, socketPath });
  t.teardown(() => server.shutdown());
  const { tcpPort } = await server.start();
  const client = createWorkloadNetworkClient(`unix:${socketPath}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  return { plane, socketPath, server, client, tcpPort, logs };
}

/** A unary call as a promise: `unary<GetResponse>((callback) => client.get(request, callback))`. */
function unary<Response>(invoke: (callback: grpc.requestCallback<Response>) => unknown): Promise<Response> {
  return new Promise((resolve, reject) => {
    invoke((error, response) => (error ? reject(error) : resolve(response as Response)));
  });
}

function nextMessages<T>(stream: grpc.ClientReadableStream<T>, count: number): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const received: T[] = [];
    const onData = (message: T) => {
      received.push(message);
      if (received.length === count) {
        stream.off("data", onData);
        stream.off("error", reject);
        resolve(received);
      }
    };
    stream.on("data", onData);
    stream.once("error", reject);
  });
}

function streamStatus(stream: grpc.ClientReadableStream<unknown>): Promise<grpc.ServiceError> {
  return new Promise((resolve) => stream.once("error", resolve));
}

async function eventually(t: ExecutionContext, condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 100 && !condition(); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.true(condition(), what);
}

test("Apply CREATE returns the network and passes the request to the plane", async (t) => {
  const { client, plane } = await startServer(t);
  const response = await unary<ApplyResponse>((callback) =>
    client.apply({ instanceId: "fn-1", definition: "{}", action: WorkloadRequestKind.CREATE }, callback),
  );
  t.deepEqual(plane.requests, [{ instanceId: "fn-1", definition: "{}", action: "create" }]);
  t.is(response.network?.instanceId, "fn-1");
  t.is(response.network?.status, ResourceStatus.RUNNING);
  t.is(response.network?.network.case, "function");
  t.is(response.network?.network.value?.guestIp, "10.220.0.2");
});

test("Apply DESTROY is passed to the plane as destroy", async (t) => {
  const { client, plane } = await startServer(t);
  await unary<ApplyResponse>((callback) =>
    client.apply({ instanceId: "fn-1", action: WorkloadRequestKind.DESTROY }, callback),
  );
  t.is(plane.requests[0]?.action, "destroy");
});

test("Apply with an action outside the enum is INVALID_ARGUMENT and reaches no plane", async (t) => {
  const { client, plane } = await startServer(t);
  await t.throwsAsync(
    unary<ApplyResponse>((callback) =>
      client.apply({ instanceId: "fn-1", action: 7 as WorkloadRequestKind }, callback),
    ),
    { code: grpc.status.INVALID_ARGUMENT, message: /unknown action 7/ },
  );
  t.deepEqual(plane.requests, []);
});

const expectedStatus: [NetworkErrorCode, grpc.status][] = [
  ["invalid-argument", grpc.status.INVALID_ARGUMENT],
  ["not-found", grpc.status.NOT_FOUND],
  ["already-exists", grpc.status.ALREADY_EXISTS],
  ["failed-precondition", grpc.status.FAILED_PRECONDITION],
  ["resource-exhausted", grpc.status.RESOURCE_EXHAUSTED],
  ["unimplemented", grpc.status.UNIMPLEMENTED],
  ["unavailable", grpc.status.UNAVAILABLE],
  ["internal", grpc.status.INTERNAL],
];

test("Apply failing with each NetworkError code answers the matching gRPC status and message", async (t) => {
  const plane = new FakePlane();
  plane.applyHook = async (request) => {
    throw new NetworkError(request.instanceId as NetworkErrorCode, `failed as ${request.instanceId}`);
  };
  const { client } = await startServer(t, { plane });
  for (const [code, grpcCode] of expectedStatus) {
    const error = await t.throwsAsync<grpc.ServiceError>(
      unary<ApplyResponse>((callback) => client.apply({ instanceId: code }, callback)),
    );
    t.is(error?.code, grpcCode, code);
    t.is(error?.details, `failed as ${code}`);
  }
});

test("Apply failing with a bug answers INTERNAL and logs the stack", async (t) => {
  const plane = new FakePlane();
  plane.applyHook = async () => {
    throw new TypeError("cannot read properties of undefined");
  };
  const { client, logs } = await startServer(t, { plane });
  const error = await t.throwsAsync<grpc.ServiceError>(
    unary<ApplyResponse>((callback) => client.apply({ instanceId: "fn-1" }, callback)),
  );
  t.is(error?.code, grpc.status.INTERNAL);
  t.is(error?.details, "internal error: cannot read properties of undefined; see the service log");
  const entry = logs.find((log) => log.message === "rpc");
  t.like(entry, { level: "error", code: "INTERNAL", error: "cannot read properties of undefined" });
  t.regex(String(entry?.stack), /TypeError/);
});

test("each RPC writes exactly one log line with method, instance_id, code and duration", async (t) => {
  const { client, logs } = await startServer(t);
  await unary<ApplyResponse>((callback) => client.apply({ instanceId: "fn-1" }, callback));
  await t.throwsAsync(unary<GetResponse>((callback) => client.get({ instanceId: "nope" }, callback)));
  const rpcLogs = logs.filter((log) => log.message === "rpc");
  t.is(rpcLogs.length, 2);
  t.like(rpcLogs[0], { level: "info", method: "Apply", instance_id: "fn-1", code: "OK" });
  t.like(rpcLogs[1], { level: "warn", method: "Get", instance_id: "nope", code: "NOT_FOUND" });
  t.regex(String(rpcLogs[1]?.error), /no network for instance nope/);
  for (const log of rpcLogs) t.is(typeof log.duration_ms, "number");
});

test("Get answers the network, NOT_FOUND for an unknown one, INVALID_ARGUMENT without an id", async (t) => {
  const { client, plane } = await startServer(t);
  plane.change(functionNetwork("fn-1"));
  const response = await unary<GetResponse>((callback) => client.get({ instanceId: "fn-1" }, callback));
  t.is(response.network?.instanceId, "fn-1");
  await t.throwsAsync(
    unary<GetResponse>((callback) => client.get({ instanceId: "fn-2" }, callback)),
    { code: grpc.status.NOT_FOUND },
  );
  await t.throwsAsync(
    unary<GetResponse>((callback) => client.get({}, callback)),
    { code: grpc.status.INVALID_ARGUMENT, message: /instance_id is required/ },
  );
});

test("List answers every network", async (t) => {
  const { client, plane } = await startServer(t);
  plane.change(functionNetwork("fn-1"));
  plane.change(functionNetwork("fn-2", "creating"));
  const response = await unary<ListResponse>((callback) => client.list({}, callback));
  t.deepEqual(
    response.networks.map((network) => [network.instanceId, network.status]),
    [
      ["fn-1", ResourceStatus.RUNNING],
      ["fn-2", ResourceStatus.CREATING],
    ],
  );
});

test("Watch sends the existing networks, then each change, and unsubscribes on cancel", async (t) => {
  const { client, plane, logs } = await startServer(t);
  plane.change(functionNetwork("fn-1"));
  plane.change(functionNetwork("fn-2"));
  const stream = client.watch({});
  const initial = await nextMessages<WorkerStatus>(stream, 2);
  t.deepEqual(
    initial.map((message) => [message.identifier, message.status.case === "instance" && message.status.value.instanceId]),
    [
      ["node-a", "fn-1"],
      ["node-a", "fn-2"],
    ],
  );

  const next = nextMessages<WorkerStatus>(stream, 1);
  plane.change(functionNetwork("fn-1", "destroying"));
  const [change] = await next;
  t.is(change?.status.case, "instance");
  t.is(change?.status.value?.status, ResourceStatus.DESTROYING);
  t.like(JSON.parse(change?.status.value?.metrics ?? "{}"), { instanceId: "fn-1", status: "DESTROYING" });

  const ended = streamStatus(stream);
  stream.cancel();
  t.is((await ended).code, grpc.status.CANCELLED);
  await eventually(t, () => plane.listeners.size === 0, "the Watch unsubscribed");
  await eventually(t, () => logs.some((log) => log.method === "Watch"), "the Watch end was logged");
  t.like(
    logs.find((log) => log.method === "Watch"),
    { message: "rpc", code: "CANCELLED" },
  );
});

test("a request larger than the limit is refused with RESOURCE_EXHAUSTED", async (t) => {
  const { client, plane } = await startServer(t);
  await t.throwsAsync(
    unary<ApplyResponse>((callback) =>
      client.apply({ instanceId: "fn-1", definition: "x".repeat(maxReceiveMessageBytes + 1) }, callback),
    ),
    { code: grpc.status.RESOURCE_EXHAUSTED },
  );
  t.deepEqual(plane.requests, []);
});

test("the health service answers SERVING for the server and for WorkloadNetwork", async (t) => {
  const { socketPath } = await startServer(t);
  const health = createHealthClient(`unix:${socketPath}`);
  t.teardown(() => health.close());
  for (const name of ["", "rik.network.v1.WorkloadNetwork"]) {
    t.is(await checkHealth(health, name), "SERVING", `health of "${name}"`);
  }
});

test("reflection lists the services and resolves workload_network.proto with its imports", async (t) => {
  const { socketPath } = await startServer(t);
  const client = new ReflectionClient(`unix:${socketPath}`);
  t.teardown(() => client.close());

  const names = await client.listServices();
  t.true(names.includes("rik.network.v1.WorkloadNetwork"), names.join(", "));
  t.true(names.includes("grpc.health.v1.Health"), names.join(", "));

  const fileRequests: Record<string, string>[] = [
    { fileContainingSymbol: "rik.network.v1.WorkloadNetwork" },
    { fileByFilename: "rik/network/v1/workload_network.proto" },
  ];
  for (const request of fileRequests) {
    const files = await client.filesFor(request);
    t.deepEqual(files.map((file) => file.name).sort(), [
      "common/common.proto",
      "rik/network/v1/workload_network.proto",
      "worker/worker.proto",
    ]);
  }
  const registry = await client.registryFor("rik.network.v1.WorkloadNetwork");
  t.is(registry.getService("rik.network.v1.WorkloadNetwork")?.method.watch?.output.typeName, "common.WorkerStatus");
  t.truthy(registry.getMessage("worker.InstanceScheduling"));

  t.is((await client.filesFor({ fileContainingSymbol: "grpc.health.v1.Health" })).length, 1);
});

test("the socket is created with mode 0600, in a parent directory created if missing", async (t) => {
  const { socketPath } = await startServer(t);
  t.true((await stat(socketPath)).isSocket());
  t.is((await stat(socketPath)).mode & 0o777, 0o600);
  t.true((await stat(dirname(socketPath))).isDirectory());
});

test("with a socket group, the socket belongs to that group with mode 0660", async (t) => {
  const { socketPath } = await startServer(t, { socketGroup: { name: "nogroup", gid: 65534 } });
  const stats = await stat(socketPath);
  t.is(stats.mode & 0o777, 0o660);
  t.is(stats.gid, 65534);
});

test("serves plain TCP only when asked for as insecure, on the port it returns, with a warning", async (t) => {
  const { tcpPort, logs } = await startServer(t, { listen: { host: "127.0.0.1", port: 0, tls: "insecure" } });
  t.true(typeof tcpPort === "number" && tcpPort > 0);
  const client = createWorkloadNetworkClient(`127.0.0.1:${tcpPort}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const response = await unary<ListResponse>((callback) => client.list({}, callback));
  t.deepEqual(response.networks, []);
  t.like(
    logs.find((log) => log.level === "warn"),
    { message: "serving plain TCP without TLS (--insecure-tcp): anyone who can reach this port can rewire the node's network", tcp_port: tcpPort },
  );
});

test("the RPC observer hears of every call once, with its method, code and duration", async (t) => {
  const heard: [string, string, number][] = [];
  const { client } = await startServer(t, {
    rpcObserver: { rpcFinished: (method, code, seconds) => heard.push([method, code, seconds]) },
  });
  await unary<ApplyResponse>((callback) => client.apply({ instanceId: "fn-1" }, callback));
  await t.throwsAsync(unary<GetResponse>((callback) => client.get({ instanceId: "nope" }, callback)));
  const watch = client.watch({});
  const cancelled = streamStatus(watch);
  await nextMessages(watch, 1);
  watch.cancel();
  t.is((await cancelled).code, grpc.status.CANCELLED);
  await eventually(t, () => heard.length === 3, "Watch reported once cancelled");
  t.deepEqual(
    heard.map(([method, code]) => [method, code]),
    [
      ["Apply", "OK"],
      ["Get", "NOT_FOUND"],
      ["Watch", "CANCELLED"],
    ],
  );
  for (const [, , seconds] of heard) t.true(seconds >= 0 && seconds < 10);
});

test("refuses to start on a socket a live server holds, and leaves that socket alone", async (t) => {
  const { socketPath, client } = await startServer(t);
  const { logger } = captureLogger();
  const second = createServer({ plane: new FakePlane(), nodeName: "node-b", logger, socketPath });
  await t.throwsAsync(second.start(), {
    message: `another rik-network is already serving on ${socketPath}; stop it or pass --socket`,
  });
  await second.shutdown();
  t.true((await stat(socketPath)).isSocket());
  await t.notThrowsAsync(unary<ListResponse>((callback) => client.list({}, callback)));
});

test("replaces a stale socket left by a killed process", async (t) => {
  const socketPath = join(await temporaryDirectory(t), "stale.sock");
  const child = spawn(process.execPath, [
    "-e",
    `require("node:net").createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, "SIGKILL"))`,
  ]);
  await new Promise((resolve) => child.once("exit", resolve));
  t.true((await stat(socketPath)).isSocket(), "the killed process left its socket behind");

  const { client } = await startServer(t, { socketPath });
  await t.notThrowsAsync(unary<ListResponse>((callback) => client.list({}, callback)));
});

test("refuses to start when the path is not a socket, and leaves the file alone", async (t) => {
  const socketPath = join(await temporaryDirectory(t), "not-a-socket");
  await writeFile(socketPath, "precious");
  const { logger } = captureLogger();
  const server = createServer({ plane: new FakePlane(), nodeName: "node-a", logger, socketPath });
  await t.throwsAsync(server.start(), { message: `${socketPath} exists and is not a socket; remove it or pass --socket` });
  t.true((await stat(socketPath)).isFile());
});

test("shutdown lets an in-flight call finish, then removes the socket", async (t) => {
  const plane = new FakePlane();
  let entered!: () => void;
  const applyEntered = new Promise<void>((resolve) => (entered = resolve));
  let release!: () => void;
  plane.applyHook = async (request) => {
    entered();
    await new Promise<void>((resolve) => (release = resolve));
    return functionNetwork(request.instanceId);
  };
  const { client, server, socketPath } = await startServer(t, { plane });
  const inFlight = unary<ApplyResponse>((callback) => client.apply({ instanceId: "fn-1" }, callback));
  await applyEntered;

  let shutDown = false;
  const shutdown = server.shutdown().then(() => (shutDown = true));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.false(shutDown, "shutdown waits for the call in flight");

  release();
  t.is((await inFlight).network?.instanceId, "fn-1");
  await shutdown;
  await t.throwsAsync(stat(socketPath), { code: "ENOENT" });
});

test("shutdown cancels the calls still in flight after its deadline", async (t) => {
  const plane = new FakePlane();
  let entered!: () => void;
  const applyEntered = new Promise<void>((resolve) => (entered = resolve));
  plane.applyHook = () => {
    entered();
    return new Promise(() => {});
  };
  const { client, server, logs } = await startServer(t, { plane, shutdownDeadlineMs: 200 });
  const inFlight = unary<ApplyResponse>((callback) => client.apply({ instanceId: "fn-1" }, callback));
  await applyEntered;
  await server.shutdown();
  await t.throwsAsync(inFlight);
  t.true(logs.some((log) => log.level === "warn" && log.deadline_ms === 200));
});

test("shutdown reports NOT_SERVING and ends Watch streams with UNAVAILABLE without waiting for the deadline", async (t) => {
  const { client, server, socketPath } = await startServer(t, { shutdownDeadlineMs: 60_000 });
  const health = createHealthClient(`unix:${socketPath}`);
  t.teardown(() => health.close());
  const healthWatch = health.watch({ service: "" });
  // Cancelling it, as the test does in the end, ends it with a CANCELLED error.
  healthWatch.on("error", () => {});
  t.is((await nextMessages(healthWatch, 1))[0]?.status, "SERVING");
  const watch = client.watch({});
  await new Promise((resolve) => watch.once("metadata", resolve));

  const notServing = nextMessages(healthWatch, 1);
  const watchEnded = streamStatus(watch);
  const shutdown = server.shutdown();
  t.is((await notServing)[0]?.status, "NOT_SERVING");
  t.is((await watchEnded).code, grpc.status.UNAVAILABLE);
  // The health Watch is the client's to end; once it does, nothing holds the server.
  healthWatch.cancel();
  await shutdown;
});
