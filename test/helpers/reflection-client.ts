/**
 * A client that knows nothing of rik-network's code: it learns the API from server
 * reflection (grpc.reflection.v1, as grpcurl does) and speaks it with dynamic messages.
 */
import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, fromJson, toBinary, toJson, type DescService, type FileRegistry, type JsonValue } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export interface ReflectionResponse {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

type ReflectionStub = grpc.Client & {
  serverReflectionInfo(): grpc.ClientDuplexStream<Record<string, string>, ReflectionResponse>;
};

/** The reflection service's own proto, as shipped inside @grpc/reflection, loaded with its proto-loader. */
function reflectionStub(address: string): ReflectionStub {
  const entry = createRequire(import.meta.url).resolve("@grpc/reflection");
  const protoLoader = createRequire(entry)("@grpc/proto-loader") as {
    loadSync(file: string): Parameters<typeof grpc.loadPackageDefinition>[0];
  };
  const definition = protoLoader.loadSync(join(dirname(entry), "../proto/grpc/reflection/v1/reflection.proto"));
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  return new loaded.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure()) as unknown as ReflectionStub;
}

/** Orders files so that each comes after its imports, as createFileRegistry needs; throws if an import is missing. */
function importsFirst(files: readonly FileDescriptorProto[]): FileDescriptorProto[] {
  const ordered: FileDescriptorProto[] = [];
  const remaining = [...files];
  while (remaining.length > 0) {
    const next = remaining.findIndex((file) => file.dependency.every((name) => ordered.some((done) => done.name === name)));
    if (next === -1) throw new Error(`imports missing for ${remaining.map((file) => file.name).join(", ")}`);
    ordered.push(...remaining.splice(next, 1));
  }
  return ordered;
}

export class ReflectionClient {
  private readonly stub: ReflectionStub;
  readonly address: string;

  constructor(address: string) {
    this.address = address;
    this.stub = reflectionStub(address);
  }

  /** One request on a fresh reflection stream. */
  ask(request: Record<string, string>): Promise<ReflectionResponse> {
    return new Promise((resolve, reject) => {
      const stream = this.stub.serverReflectionInfo();
      stream.once("data", (response: ReflectionResponse) => {
        stream.end();
        resolve(response);
      });
      stream.once("error", reject);
      stream.write(request);
    });
  }

  /** `grpcurl list` */
  async listServices(): Promise<string[]> {
    const response = await this.ask({ listServices: "*" });
    return (response.listServicesResponse?.service ?? []).map((service) => service.name);
  }

  /** The files that define `symbol`, with their imports, as parsed descriptors. */
  async filesFor(request: Record<string, string>): Promise<FileDescriptorProto[]> {
    const response = await this.ask(request);
    if (response.errorResponse) throw new Error(`reflection: ${response.errorResponse.errorMessage}`);
    return (response.fileDescriptorResponse?.fileDescriptorProto ?? []).map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  }

  /** `grpcurl describe <symbol>`: a registry built from nothing but what reflection returned. */
  async registryFor(symbol: string): Promise<FileRegistry> {
    const files = await this.filesFor({ fileContainingSymbol: symbol });
    return createFileRegistry(create(FileDescriptorSetSchema, { file: importsFirst(files) }));
  }

  close(): void {
    this.stub.close();
  }
}

/** Unary calls with proto-JSON in and out, like `grpcurl -d '<json>' ... Service/Method`. */
export class DynamicClient {
  private readonly client: grpc.Client;
  private readonly service: DescService;
  private readonly registry: FileRegistry;

  constructor(address: string, registry: FileRegistry, serviceName: string) {
    const service = registry.getService(serviceName);
    if (service === undefined) throw new Error(`reflection did not describe ${serviceName}`);
    this.service = service;
    this.registry = registry;
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  call(methodName: string, json: JsonValue): Promise<JsonValue> {
    const method = this.service.methods.find((m) => m.name === methodName);
    if (method === undefined) throw new Error(`${this.service.typeName} has no method ${methodName}`);
    const request = fromJson(method.input, json, { registry: this.registry });
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/${this.service.typeName}/${method.name}`,
        () => Buffer.from(toBinary(method.input, request)),
        (bytes: Buffer) => toJson(method.output, fromBinary(method.output, bytes), { registry: this.registry }),
        null,
        (error, response) => (error ? reject(error) : resolve(response as JsonValue)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
