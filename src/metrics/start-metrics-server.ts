import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "../logger.js";

export interface MetricsServerOptions {
  readonly host: string;
  /** 0 picks a free port, returned as `port`. */
  readonly port: number;
  readonly registry: Registry;
  readonly logger: Logger;
}

export interface MetricsServer {
  /** The bound port. */
  readonly port: number;
  /** e.g. http://127.0.0.1:9464/metrics */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` in the Prometheus text format (and HEAD), 404 elsewhere.
 * Rejects with a message naming the address when it cannot be bound.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { host, registry, logger } = options;
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://metrics").pathname;
    if (path !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: the metrics are at /metrics\n");
      return;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("use GET\n");
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { "content-type": registry.contentType }).end(request.method === "HEAD" ? undefined : text),
      (error: unknown) => {
        logger.error("cannot collect the metrics", { error: error instanceof Error ? error.message : String(error) });
        response.writeHead(500, { "content-type": "text/plain" }).end("cannot collect the metrics; see the service log\n");
      },
    );
  });
  // A scraper that keeps its connection open must not hold up the shutdown.
  server.keepAliveTimeout = 5_000;
  const display = host.includes(":") ? `[${host}]` : host;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new Error(`cannot serve metrics on ${display}:${options.port}: ${error.message}; pass another --metrics-listen, or off`, {
          cause: error,
        }),
      ),
    );
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://${display}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
