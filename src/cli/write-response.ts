import { toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { CliIo } from "./cli-io.js";

/**
 * Prints a response: with `json`, as proto JSON (what grpcurl prints: lowerCamelCase
 * names, enum names), else as `human` renders it for a terminal.
 */
export function writeResponse<Desc extends DescMessage>(
  io: CliIo,
  json: boolean,
  schema: Desc,
  message: MessageShape<Desc>,
  human: (message: MessageShape<Desc>) => string,
): void {
  io.stdout.write(json ? `${toJsonString(schema, message, { prettySpaces: 2 })}\n` : human(message));
}
