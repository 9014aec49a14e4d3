import type * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";

type Method = GenServiceMethods[string];
type AnyService = GenService<GenServiceMethods>;
type MethodsOf<S extends AnyService> = S extends GenService<infer T> ? T : never;
type Input<M extends Method> = MessageShape<M["input"]>;
type Output<M extends Method> = MessageShape<M["output"]>;
/** Callers may pass a plain init object; the serializer turns it into a message. */
type InputInit<M extends Method> = MessageInitShape<M["input"]>;

type Handler<M extends Method> = M["methodKind"] extends "unary"
  ? grpc.handleUnaryCall<Input<M>, Output<M>>
  : M["methodKind"] extends "server_streaming"
    ? grpc.handleServerStreamingCall<Input<M>, Output<M>>
    : M["methodKind"] extends "client_streaming"
      ? grpc.handleClientStreamingCall<Input<M>, Output<M>>
      : grpc.handleBidiStreamingCall<Input<M>, Output<M>>;

/**
 * The server handlers of a generated service, one per method, keyed by the method's
 * `localName`: `ServiceImplementation<typeof WorkloadNetwork>` has `apply`, `get`, ...
 */
export type ServiceImplementation<S extends AnyService> = {
  [K in keyof MethodsOf<S>]: Handler<MethodsOf<S>[K]>;
};

interface UnaryClientMethod<I, O> {
  (request: I, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (request: I, metadata: grpc.Metadata, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (request: I, options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (
    request: I,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<O>,
  ): grpc.ClientUnaryCall;
}

interface ServerStreamingClientMethod<I, O> {
  (request: I, options?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<O>;
  (request: I, metadata?: grpc.Metadata, options?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<O>;
}

interface ClientStreamingClientMethod<I, O> {
  (callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (metadata: grpc.Metadata, callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<O>,
  ): grpc.ClientWritableStream<I>;
}

interface BidiStreamingClientMethod<I, O> {
  (options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<I, O>;
  (metadata?: grpc.Metadata, options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<I, O>;
}

type ClientMethod<M extends Method> = M["methodKind"] extends "unary"
  ? UnaryClientMethod<InputInit<M>, Output<M>>
  : M["methodKind"] extends "server_streaming"
    ? ServerStreamingClientMethod<InputInit<M>, Output<M>>
    : M["methodKind"] extends "client_streaming"
      ? ClientStreamingClientMethod<InputInit<M>, Output<M>>
      : BidiStreamingClientMethod<InputInit<M>, Output<M>>;

/**
 * A grpc-js client of a generated service: one method per RPC, keyed by `localName`
 * (`ServiceClient<typeof WorkloadNetwork>` has `apply`, `get`, ...). Requests may be
 * messages or plain init objects.
 */
export type ServiceClient<S extends AnyService> = grpc.Client & {
  [K in keyof MethodsOf<S>]: ClientMethod<MethodsOf<S>[K]>;
};

/**
 * Turns a protobuf-es v2 service descriptor (from src/gen) into the grpc-js
 * `ServiceDefinition` that both `Server.addService` and
 * `grpc.makeGenericClientConstructor` take. Methods are keyed by `localName`
 * (`apply`), with the proto name (`Apply`) as `originalName`.
 */
export function serviceDefinition<S extends AnyService>(service: S): grpc.ServiceDefinition<ServiceImplementation<S>> {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      originalName: method.name,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
    };
  }
  return definition as grpc.ServiceDefinition<ServiceImplementation<S>>;
}

function serializer(schema: DescMessage): grpc.serialize<unknown> {
  return (value) => {
    const bytes = toBinary(schema, create(schema, value as MessageInitShape<DescMessage>));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(schema: DescMessage): grpc.deserialize<unknown> {
  return (bytes) => fromBinary(schema, bytes);
}
