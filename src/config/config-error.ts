import type { Option } from "./options.js";

/** An invalid flag or environment variable; the message says which, and what is expected. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** A value and where it came from, so that an error can point at it. */
export interface Given {
  readonly option: Option;
  readonly value: string;
  readonly source: string;
}

/** The one shape of a bad value's message: the value, the flag and the variable, where it came from, what is expected. */
export function invalid(given: Given, expected: string): ConfigError {
  const { option, value, source } = given;
  return new ConfigError(
    `invalid value "${value}" for --${option.flag} / ${option.env} (from ${source}): ${expected}`,
  );
}
