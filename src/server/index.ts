export {
  createServer,
  maxReceiveMessageBytes,
  type CreateServerOptions,
  type ServingAddresses,
  type WorkloadNetworkServer,
} from "./create-server.js";
export { claimSocketPath, type SocketGroup } from "./bind-unix-socket.js";
export { createHealthClient, type HealthClient } from "./create-health-client.js";
export { loadServerTls, type ServerTls, type ServerTlsFiles } from "./load-server-tls.js";
export { resolveGroupId } from "./resolve-group-id.js";
export type { RpcObserver } from "./rpc-observer.js";
export { createClient, createWorkloadNetworkClient, type WorkloadNetworkClient } from "./create-client.js";
export { serviceDefinition, type ServiceClient, type ServiceImplementation } from "./service-definition.js";
export { statusFromError, type RpcStatus } from "./status-from-error.js";
export { toInstanceNetworkMessage } from "./to-instance-network-message.js";
export { toWorkerStatus } from "./to-worker-status.js";
export { workloadNetworkService, type WorkloadNetworkServiceOptions } from "./workload-network-service.js";
