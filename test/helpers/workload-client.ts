/**
 * Promise-shaped calls of the real WorkloadNetwork service over its unix socket, with
 * errors surfaced as grpc-js ServiceErrors (code + details) for assertions.
 */
import * as grpc from "@grpc/grpc-js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ResourceStatus, WorkloadRequestKind, type WorkerStatus } from "../../src/gen/common/common_pb.js";
import type { ApplyResponse, GetResponse, InstanceNetwork, ListResponse } from "../../src/gen/rik/network/v1/workload_network_pb.js";
import type { InstanceSchedulingSchema } from "../../src/gen/worker/worker_pb.js";
import { createWorkloadNetworkClient, type WorkloadNetworkClient } from "../../src/server/create-client.js";

export { ResourceStatus, WorkloadRequestKind };

/** One entry of `spec.function.exposure`: node `port` (on `hostIP`, default every address) to guest `targetPort`. */
export interface PortExposure {
  readonly port: number;
  readonly targetPort: number;
  readonly type?: string;
  /** "TCP" (the default) or "UDP". */
  readonly protocol?: string;
  readonly hostIP?: string;
}

export interface FunctionDefinitionOptions {
  readonly name?: string;
  /** RIK's single object (sent with `type: "NodePort"` unless given), or an array sent as written. */
  readonly exposure?: PortExposure | readonly PortExposure[] | undefined;
}

/** `exposure` as it goes on the wire. */
function exposureJson(exposure: PortExposure | readonly PortExposure[]): unknown {
  return Array.isArray(exposure) ? exposure : { type: "NodePort", ...exposure };
}

/** RIK's JSON workload for a Function, as the scheduler sends it. */
export function functionDefinition({ name = "hello", exposure }: FunctionDefinitionOptions = {}): string {
  return JSON.stringify({
    apiVersion: "v0",
    kind: "Function",
    name,
    replicas: 1,
    spec: {
      containers: [],
      function: {
        execution: { rootfs: "https://example.invalid/rootfs.ext4" },
        ...(exposure === undefined ? {} : { exposure: exposureJson(exposure) }),
      },
    },
  });
}

function unary<T>(call: (callback: grpc.requestCallback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => call((error, value) => (error ? reject(error) : resolve(value as T))));
}

export interface WatchStream {
  /** Resolves with the next `count` messages (waiting for them if needed). */
  next(count?: number): Promise<WorkerStatus[]>;
  cancel(): void;
}

export class WorkloadClient {
  readonly raw: WorkloadNetworkClient;

  constructor(address: string) {
    // Its own connection: a client made right after a restart must not inherit a shared reconnect back-off.
    this.raw = createWorkloadNetworkClient(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  }

  async apply(request: MessageInitShape<typeof InstanceSchedulingSchema>): Promise<InstanceNetwork> {
    const response = await unary<ApplyResponse>((cb) => this.raw.apply(request, { deadline: Date.now() + 30_000 }, cb));
    return response.network!;
  }

  create(instanceId: string, definition: string): Promise<InstanceNetwork> {
    return this.apply({ instanceId, definition, action: WorkloadRequestKind.CREATE });
  }

  destroy(instanceId: string): Promise<InstanceNetwork> {
    return this.apply({ instanceId, definition: "", action: WorkloadRequestKind.DESTROY });
  }

  async get(instanceId: string): Promise<InstanceNetwork> {
    return (await unary<GetResponse>((cb) => this.raw.get({ instanceId }, cb))).network!;
  }

  async list(): Promise<InstanceNetwork[]> {
    return (await unary<ListResponse>((cb) => this.raw.list({}, cb))).networks;
  }

  watch(): WatchStream {
    const stream = this.raw.watch({});
    const received: WorkerStatus[] = [];
    const waiters: (() => void)[] = [];
    let failure: Error | undefined;
    stream.on("data", (message: WorkerStatus) => {
      received.push(message);
      waiters.splice(0).forEach((wake) => wake());
    });
    stream.on("error", (error: Error) => {
      failure = error;
      waiters.splice(0).forEach((wake) => wake());
    });
    let taken = 0;
    return {
      async next(count = 1) {
        const deadline = Date.now() + 10_000;
        while (received.length < taken + count) {
          if (failure) throw failure;
          if (Date.now() > deadline) throw new Error(`watch: ${received.length - taken} of ${count} messages after 10 s`);
          await new Promise<void>((resolve) => {
            waiters.push(resolve);
            setTimeout(resolve, 200);
          });
        }
        const batch = received.slice(taken, taken + count);
        taken += count;
        return batch;
      },
      cancel: () => stream.cancel(),
    };
  }

  close(): void {
    this.raw.close();
  }
}

/** The gRPC status of a failed call, for `t.like(await codeOf(...), {...})`. */
export async function failureOf(call: Promise<unknown>): Promise<{ code: grpc.status; details: string }> {
  try {
    await call;
  } catch (error) {
    const { code, details } = error as grpc.ServiceError;
    return { code, details };
  }
  throw new Error("the call succeeded, but a failure was expected");
}
