import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, service as healthService } from "grpc-health-check";
import { rm } from "node:fs/promises";
import { file_rik_network_v1_workload_network, WorkloadNetwork } from "../gen/rik/network/v1/workload_network_pb.js";
import type { Logger } from "../logger.js";
import type { NetworkPlane } from "../network/plane/network-plane.js";
import { bindAsync } from "./bind-async.js";
import { bindUnixSocket, type SocketGroup } from "./bind-unix-socket.js";
import type { ServerTls } from "./load-server-tls.js";
import type { RpcObserver } from "./rpc-observer.js";
import { serviceDefinition } from "./service-definition.js";
import { reflectionPackageDefinition } from "./reflection-package-definition.js";
import { workloadNetworkService } from "./workload-network-service.js";

export interface CreateServerOptions {
  readonly plane: NetworkPlane;
  /** The node's name, sent as `identifier` in Watch messages. */
  readonly nodeName: string;
  readonly logger: Logger;
  /** Absolute path of the unix socket to serve on. */
  readonly socketPath: string;
  /** Give the socket to this group, mode 0660, instead of root only (0600). */
  readonly socketGroup?: SocketGroup;
  /**
   * Also serve on TCP. Port 0 picks a free port, returned by `start()`. With `tls`,
   * clients must present a certificate that chains to `tls.clientCa` (mTLS);
   * "insecure" serves plain TCP and logs a warning.
   */
  readonly listen?: { readonly host: string; readonly port: number; readonly tls: ServerTls | "insecure" };
  /** Told of every WorkloadNetwork RPC's outcome (metrics). */
  readonly rpcObserver?: RpcObserver;
  /** How long `shutdown()` lets in-flight calls finish before cancelling them. */
  readonly shutdownDeadlineMs?: number;
}

export interface ServingAddresses {
  readonly socketPath: string;
  /** Set when `listen` was given: the bound port. */
  readonly tcpPort?: number;
}

export interface WorkloadNetworkServer {
  /** Binds the listeners and serves until `shutdown()`. Rejects (and releases what it bound) if a listener cannot be bound. */
  start(): Promise<ServingAddresses>;
  /**
   * Reports NOT_SERVING, ends Watch streams, lets in-flight calls finish (cancelling
   * those still running after the deadline), then removes the socket file. Idempotent.
   */
  shutdown(): Promise<void>;
}

/** Larger requests are refused with RESOURCE_EXHAUSTED: a workload definition is a few KiB. */
export const maxReceiveMessageBytes = 1024 * 1024;

const defaultShutdownDeadlineMs = 10_000;

/** mTLS: the server's certificate, and client certificates required and checked against the client CA. */
function tcpCredentials(tls: ServerTls | "insecure"): grpc.ServerCredentials {
  if (tls === "insecure") return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.clientCa, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/** The names the health service answers for: the whole server ("") and each service. */
const healthNames = ["", WorkloadNetwork.typeName];

/**
 * The gRPC server of rik-network: `rik.network.v1.WorkloadNetwork` against `plane`,
 * plus the standard health and reflection services. Nothing is bound before `start()`.
 */
export function createServer(options: CreateServerOptions): WorkloadNetworkServer {
  const { plane, nodeName, logger, socketPath, listen, rpcObserver } = options;
  const shutdownDeadlineMs = options.shutdownDeadlineMs ?? defaultShutdownDeadlineMs;

  const server = new grpc.Server({ "grpc.max_receive_message_length": maxReceiveMessageBytes });
  const shuttingDown = new AbortController();
  server.addService(
    serviceDefinition(WorkloadNetwork),
    workloadNetworkService({ plane, nodeName, logger, rpcObserver, shutdown: shuttingDown.signal }),
  );
  const health = new HealthImplementation(Object.fromEntries(healthNames.map((name) => [name, "SERVING"])));
  health.addToServer(server);
  const healthFiles = Object.values(healthService).flatMap((method) => method.requestType.fileDescriptorProtos);
  new ReflectionService(reflectionPackageDefinition([file_rik_network_v1_workload_network], healthFiles)).addToServer(
    server,
  );

  let started = false;
  let socketBound = false;
  let stopped: Promise<void> | undefined;

  async function removeSocket(): Promise<void> {
    if (socketBound) {
      socketBound = false;
      await rm(socketPath, { force: true });
    }
  }

  function drain(): Promise<void> {
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        logger.warn("graceful shutdown deadline passed; cancelling the calls still in flight", {
          deadline_ms: shutdownDeadlineMs,
        });
        server.forceShutdown();
        resolve();
      }, shutdownDeadlineMs);
      server.tryShutdown(() => {
        clearTimeout(deadline);
        resolve();
      });
    });
  }

  return {
    async start() {
      if (started) throw new Error("the server was already started");
      started = true;
      try {
        await bindUnixSocket(server, socketPath, options.socketGroup);
        socketBound = true;
        if (listen === undefined) return { socketPath };
        const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
        const tcpPort = await bindAsync(server, `${host}:${listen.port}`, tcpCredentials(listen.tls));
        if (listen.tls === "insecure") {
          logger.warn("serving plain TCP without TLS (--insecure-tcp): anyone who can reach this port can rewire the node's network", {
            host: listen.host,
            tcp_port: tcpPort,
          });
        }
        return { socketPath, tcpPort };
      } catch (error) {
        server.forceShutdown();
        await removeSocket();
        throw error;
      }
    },

    shutdown() {
      stopped ??= (async () => {
        for (const name of healthNames) health.setStatus(name, "NOT_SERVING");
        shuttingDown.abort();
        await drain();
        await removeSocket();
      })();
      return stopped;
    },
  };
}
