import { Metadata, status, type handleUnaryCall } from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { WorkloadRequestKind } from "../gen/common/common_pb.js";
import {
  ApplyResponseSchema,
  GetResponseSchema,
  ListResponseSchema,
  type WorkloadNetwork,
} from "../gen/rik/network/v1/workload_network_pb.js";
import type { Logger } from "../logger.js";
import type { ApplyAction, InstanceNetwork } from "../network/model/instance-network.js";
import { NetworkError } from "../network/model/network-error.js";
import type { NetworkPlane } from "../network/plane/network-plane.js";
import type { ServiceImplementation } from "./service-definition.js";
import { reportRpc } from "./report-rpc.js";
import type { RpcObserver } from "./rpc-observer.js";
import { statusFromError } from "./status-from-error.js";
import { toInstanceNetworkMessage } from "./to-instance-network-message.js";
import { toWorkerStatus } from "./to-worker-status.js";

export interface WorkloadNetworkServiceOptions {
  readonly plane: NetworkPlane;
  /** Sent as `identifier` in every Watch message. */
  readonly nodeName: string;
  readonly logger: Logger;
  /** Told of every RPC's outcome, e.g. to count and time them. */
  readonly rpcObserver?: RpcObserver;
  /**
   * Aborted when the server starts shutting down. Watch streams never end on their
   * own, so they are ended then (UNAVAILABLE, so that clients reconnect elsewhere or
   * later) instead of holding up the graceful shutdown until its deadline.
   */
  readonly shutdown: AbortSignal;
}

/** The handlers of `rik.network.v1.WorkloadNetwork` against a network plane. */
export function workloadNetworkService(
  options: WorkloadNetworkServiceOptions,
): ServiceImplementation<typeof WorkloadNetwork> {
  const { plane, nodeName, logger, shutdown } = options;
  const report = reportRpc(logger, options.rpcObserver);

  function unary<Request, Response>(
    method: string,
    instanceIdOf: (request: Request) => string | undefined,
    handle: (request: Request) => Promise<Response>,
  ): handleUnaryCall<Request, Response> {
    return (call, callback) => {
      const startedAt = performance.now();
      const instanceId = instanceIdOf(call.request);
      // The answer goes out first: its log line and metrics need not delay the caller.
      handle(call.request).then(
        (response) => {
          const finished = { method, instanceId, code: status.OK, startedAt, endedAt: performance.now() };
          callback(null, response);
          report(finished);
        },
        (error: unknown) => {
          const failure = statusFromError(error);
          const finished = { method, instanceId, code: failure.code, startedAt, endedAt: performance.now(), error };
          callback(failure);
          report(finished);
        },
      );
    };
  }

  return {
    apply: unary(
      "Apply",
      (request) => request.instanceId,
      async (request) => {
        const network = await plane.apply({
          instanceId: request.instanceId,
          definition: request.definition,
          action: applyAction(request.action),
        });
        return create(ApplyResponseSchema, { network: toInstanceNetworkMessage(network) });
      },
    ),

    get: unary(
      "Get",
      (request) => request.instanceId,
      async (request) => {
        if (request.instanceId === "") {
          throw new NetworkError("invalid-argument", "instance_id is required");
        }
        return create(GetResponseSchema, { network: toInstanceNetworkMessage(plane.get(request.instanceId)) });
      },
    ),

    list: unary(
      "List",
      () => undefined,
      async () => create(ListResponseSchema, { networks: plane.list().map(toInstanceNetworkMessage) }),
    ),

    watch: (call) => {
      const startedAt = performance.now();
      let unsubscribe = (): void => {};
      let ended = false;
      const end = (code: status, error?: unknown): void => {
        if (ended) return;
        ended = true;
        unsubscribe();
        shutdown.removeEventListener("abort", onShutdown);
        report({ method: "Watch", code, startedAt, error });
      };
      const fail = (code: status, details: string, error?: unknown): void => {
        if (ended) return;
        end(code, error ?? details);
        // Emitting "error" is how grpc-js ends a server stream with a status; destroy() would send none.
        call.emit("error", { code, details });
      };
      const onShutdown = (): void => fail(status.UNAVAILABLE, "rik-network is shutting down");
      // Messages are few (one per instance change), so grpc-js's write buffer is left unbounded.
      const send = (network: InstanceNetwork): void => {
        call.write(toWorkerStatus(network, nodeName));
      };

      call.on("cancelled", () => end(status.CANCELLED));
      call.on("error", (error: unknown) => end(status.INTERNAL, error));
      call.on("close", () => end(status.OK));
      if (shutdown.aborted) {
        onShutdown();
        return;
      }
      shutdown.addEventListener("abort", onShutdown);

      try {
        // Subscribe, then list, in one synchronous turn: no change can happen between
        // the two, so none is lost, and none is sent twice.
        unsubscribe = plane.subscribe(send);
        // Headers tell the client that it is subscribed, even when there is nothing to send yet.
        call.sendMetadata(new Metadata());
        plane.list().forEach(send);
      } catch (error) {
        const failure = statusFromError(error);
        fail(failure.code, failure.details, error);
      }
    },
  };
}

function applyAction(action: WorkloadRequestKind): ApplyAction {
  switch (action) {
    case WorkloadRequestKind.CREATE:
      return "create";
    case WorkloadRequestKind.DESTROY:
      return "destroy";
    default:
      throw new NetworkError(
        "invalid-argument",
        `unknown action ${action as number}: expected CREATE (0) or DESTROY (1)`,
      );
  }
}
