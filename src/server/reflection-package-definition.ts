import { toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ReflectionService } from "@grpc/reflection";

/** What `new ReflectionService(...)` takes: a proto-loader PackageDefinition. */
export type ReflectionPackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

/**
 * A PackageDefinition for @grpc/reflection built from protobuf-es descriptors.
 * @grpc/reflection reads nothing of it but the serialized FileDescriptorProtos of
 * each entry, and answers only for the files found there: so every file is given
 * with all of its imports, or clients could not resolve the types it uses.
 *
 * `serializedFiles` adds files that only exist in serialized form, e.g. the health
 * service's, which grpc-health-check loads with proto-loader.
 */
export function reflectionPackageDefinition(
  files: readonly DescFile[],
  serializedFiles: readonly Uint8Array[] = [],
): ReflectionPackageDefinition {
  const serialized = [...withImports(files)].map((file) => toBinary(FileDescriptorProtoSchema, file.proto));
  return {
    files: {
      // Required by the PackageDefinition type, never read by @grpc/reflection.
      format: "Protocol Buffer 3 DescriptorProto",
      type: {},
      fileDescriptorProtos: [...serialized, ...serializedFiles].map((bytes) =>
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      ),
    },
  };
}

function withImports(files: readonly DescFile[], seen = new Set<DescFile>()): Set<DescFile> {
  for (const file of files) {
    if (!seen.has(file)) {
      seen.add(file);
      withImports(file.dependencies, seen);
    }
  }
  return seen;
}
