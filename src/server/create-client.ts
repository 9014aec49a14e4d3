import * as grpc from "@grpc/grpc-js";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { WorkloadNetwork } from "../gen/rik/network/v1/workload_network_pb.js";
import { serviceDefinition, type ServiceClient } from "./service-definition.js";

/** A client of `rik.network.v1.WorkloadNetwork`: `apply`, `get`, `list` (unary) and `watch` (server streaming). */
export type WorkloadNetworkClient = ServiceClient<typeof WorkloadNetwork>;

/**
 * A typed grpc-js client for any generated service. `address` is a grpc-js target:
 * `unix:/run/rik-network/rik-network.sock` or `127.0.0.1:7100`. Close it with `client.close()`.
 */
export function createClient<S extends GenService<GenServiceMethods>>(
  service: S,
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: Partial<grpc.ChannelOptions>,
): ServiceClient<S> {
  const Client = grpc.makeGenericClientConstructor(serviceDefinition(service), service.typeName);
  return new Client(address, credentials, options) as unknown as ServiceClient<S>;
}

/** `createClient(WorkloadNetwork, ...)`, e.g. `createWorkloadNetworkClient("unix:" + socketPath, grpc.credentials.createInsecure())`. */
export function createWorkloadNetworkClient(
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: Partial<grpc.ChannelOptions>,
): WorkloadNetworkClient {
  return createClient(WorkloadNetwork, address, credentials, options);
}
