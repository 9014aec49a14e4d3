import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

export type HealthClient = grpc.Client & {
  check(
    request: { service: string },
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<{ status: string }>,
  ): grpc.ClientUnaryCall;
  watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

/**
 * A client of the standard grpc.health.v1.Health service. Its connection is its own:
 * grpc-js otherwise shares subchannels between clients of one address, so a probe made
 * while a restarted server is not listening yet would inherit a reconnect back-off.
 */
export function createHealthClient(address: string): HealthClient {
  const Client = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, "grpc.health.v1.Health");
  return new Client(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }) as unknown as HealthClient;
}

/** `grpc_health_probe`: the status string for `service` ("" = the whole server). */
export function checkHealth(client: HealthClient, service = "", timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) =>
    client.check({ service }, { deadline: Date.now() + timeoutMs }, (error, response) =>
      error ? reject(error) : resolve(response!.status),
    ),
  );
}
