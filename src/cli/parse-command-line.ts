import { parseArgs, type ParseArgsConfig } from "node:util";
import { CliUsageError } from "./cli-usage-error.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** The flags' values and the positional arguments, as parseArgs types them. */
export interface CommandLine<T extends Options> {
  readonly values: ReturnType<typeof parseArgs<{ options: T; strict: true; allowPositionals: true }>>["values"];
  readonly positionals: string[];
}

/**
 * Strict parsing (unknown flags and missing values are errors) of a command's
 * arguments, expecting exactly the positional arguments named in `positionals`.
 * Throws CliUsageError.
 */
export function parseCommandLine<T extends Options>(args: readonly string[], options: T, positionals: readonly string[] = []): CommandLine<T> {
  let parsed: CommandLine<T>;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new CliUsageError((error as Error).message);
  }
  const help = (parsed.values as { help?: boolean }).help === true;
  if (!help && parsed.positionals.length !== positionals.length) {
    const expected = positionals.length === 0 ? "no argument" : positionals.join(" ");
    const got = parsed.positionals.length === 0 ? "none" : parsed.positionals.map((value) => `"${value}"`).join(" ");
    throw new CliUsageError(`expected ${expected}, got ${got}`);
  }
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value === "") throw new CliUsageError(`--${name} cannot be empty`);
  }
  return parsed;
}
