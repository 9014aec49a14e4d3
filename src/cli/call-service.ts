import type * as grpc from "@grpc/grpc-js";
import { createHealthClient, createWorkloadNetworkClient, type HealthClient, type WorkloadNetworkClient } from "../server/index.js";
import type { ClientSettings } from "./client-flags.js";

/** The clients a command may use; each is created on first use, and closed after the command. */
export interface ServiceClients {
  workload(): WorkloadNetworkClient;
  health(): HealthClient;
  /** A unary call with the settings' deadline, as a promise; rejects with the grpc ServiceError. */
  unary<Response>(invoke: (options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<Response>) => unknown): Promise<Response>;
}

/** Runs `use` with clients of the service `settings` point at, and closes them afterwards. */
export async function callService<T>(settings: ClientSettings, use: (clients: ServiceClients) => Promise<T>): Promise<T> {
  const opened: grpc.Client[] = [];
  const open = <C extends grpc.Client>(client: C): C => {
    opened.push(client);
    return client;
  };
  let workload: WorkloadNetworkClient | undefined;
  let health: HealthClient | undefined;
  try {
    return await use({
      workload: () => (workload ??= open(createWorkloadNetworkClient(settings.target, settings.credentials))),
      health: () => (health ??= open(createHealthClient(settings.target, settings.credentials))),
      unary: (invoke) =>
        new Promise((resolve, reject) => {
          invoke({ deadline: Date.now() + settings.timeoutMs }, (error, response) => (error ? reject(error) : resolve(response!)));
        }),
    });
  } finally {
    for (const client of opened) client.close();
  }
}
