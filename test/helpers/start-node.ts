/**
 * The usual test bench: a topology (node + world namespaces), the real service in the node,
 * and a gRPC client of it, all torn down with the test.
 */
import { Topology, type TeardownHost, type TopologyOptions } from "./netns.js";
import { startService, type ServiceOptions, type ServiceProcess } from "./service-process.js";
import { WorkloadClient } from "./workload-client.js";

export interface NodeOptions {
  /** Options of `Topology.create` (its `teardown` is the test's). */
  readonly topology?: Omit<TopologyOptions, "teardown">;
  /** Options of `startService`, but for the namespace. Default pool 10.220.0.0/24. */
  readonly service?: Omit<ServiceOptions, "nodeNs">;
  /** Runs after the namespaces exist and before the service starts: the node as the service finds it. */
  readonly beforeService?: (topology: Topology) => Promise<unknown>;
}

export interface Node {
  readonly topology: Topology;
  readonly service: ServiceProcess;
  readonly client: WorkloadClient;
}

export async function startNode(t: TeardownHost, options: NodeOptions = {}): Promise<Node> {
  const topology = await Topology.create({ ...options.topology, teardown: t });
  await options.beforeService?.(topology);
  // A generous readiness wait: tests share 2 cores with whatever else runs, and a slow start is not what they test.
  const service = await startService({ pool: "10.220.0.0/24", readyTimeoutMs: 60_000, ...options.service, nodeNs: topology.node });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  return { topology, service, client };
}
