import * as grpc from "@grpc/grpc-js";
import {
  createHealthClient as createServiceHealthClient,
  type HealthClient as ServiceHealthClient,
  type HealthStatus,
} from "../../src/server/create-health-client.js";

/** The CLI's health client, typed with the server-streaming `watch` too. */
export type HealthClient = ServiceHealthClient & {
  watch(request: { service: string }): grpc.ClientReadableStream<{ status: HealthStatus }>;
};

/**
 * A client of the standard grpc.health.v1.Health service. Its connection is its own:
 * grpc-js otherwise shares subchannels between clients of one address, so a probe made
 * while a restarted server is not listening yet would inherit a reconnect back-off.
 */
export function createHealthClient(address: string): HealthClient {
  return createServiceHealthClient(address, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  }) as HealthClient;
}

/** `grpc_health_probe`: the status string for `service` ("" = the whole server). */
export function checkHealth(client: HealthClient, service = "", timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) =>
    client.check({ service }, { deadline: Date.now() + timeoutMs }, (error, response) =>
      error ? reject(error) : resolve(response!.status),
    ),
  );
}
