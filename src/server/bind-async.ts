import type * as grpc from "@grpc/grpc-js";

/** `server.bindAsync` as a promise of the bound port (the real one when `address` asks for port 0). */
export function bindAsync(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, port) => (error ? reject(error) : resolve(port)));
  });
}
