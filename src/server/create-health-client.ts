import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

/** "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN" (the enum's names, as grpc-health-check decodes them). */
export type HealthStatus = string;

/** A client of the standard grpc.health.v1.Health service; close it with `client.close()`. */
export type HealthClient = grpc.Client & {
  check(
    request: { service: string },
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<{ status: HealthStatus }>,
  ): grpc.ClientUnaryCall;
};

/** `address` is a grpc-js target, as for `createClient`. */
export function createHealthClient(
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: Partial<grpc.ChannelOptions>,
): HealthClient {
  const Client = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, "grpc.health.v1.Health");
  return new Client(address, credentials, options) as unknown as HealthClient;
}
