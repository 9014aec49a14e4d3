import koffi from "koffi";
import { KernelError } from "../../kernel/kernel-error.js";

/** The strings of libnftables' error text that name an errno: it reports errno only in its message. */
const ERRNO_TEXTS: readonly (readonly [string, string])[] = [
  ["No such file or directory", "ENOENT"],
  ["File exists", "EEXIST"],
  ["Operation not permitted", "EPERM"],
  ["Device or resource busy", "EBUSY"],
  ["Protocol not supported", "EPROTONOSUPPORT"],
  ["Operation not supported", "EOPNOTSUPP"],
  ["Cannot allocate memory", "ENOMEM"],
  ["Invalid argument", "EINVAL"],
];

/** The errno name libnftables' error text carries, if any. */
export function errnoOf(text: string): string | undefined {
  return ERRNO_TEXTS.find(([message]) => text.includes(message))?.[1];
}

/** The first line of libnftables' error output, which holds the reason (the rest repeats the command). */
function reasonOf(text: string): string {
  return text.split("\n").find((line) => line.trim() !== "")?.replace(/^Error: /, "") ?? "no error text";
}

interface Binding {
  readonly context: unknown;
  readonly run: (context: unknown, commands: string) => number;
  readonly error: (context: unknown) => string | null;
  readonly free: (context: unknown) => void;
}

function bind(): Binding {
  const lib = koffi.load("libnftables.so.1");
  const create = lib.func("void *nft_ctx_new(uint32_t flags)");
  const bufferOutput = lib.func("int nft_ctx_buffer_output(void *ctx)");
  const bufferError = lib.func("int nft_ctx_buffer_error(void *ctx)");
  const context: unknown = create(0);
  if (context === null) throw new Error("nft_ctx_new returned NULL");
  // Buffered, so that nothing is printed on the service's own stdout and stderr.
  bufferOutput(context);
  bufferError(context);
  return {
    context,
    run: lib.func("int nft_run_cmd_from_buffer(void *ctx, const char *buf)") as Binding["run"],
    error: lib.func("const char *nft_ctx_get_error_buffer(void *ctx)") as Binding["error"],
    free: lib.func("void nft_ctx_free(void *ctx)") as Binding["free"],
  };
}

/**
 * nftables transactions through libnftables (the library the `nft` binary is made of), in this
 * process: each `run` is one netlink batch on a socket kept open for the service's lifetime.
 * An exec of `nft -f -` per transaction costs more than the transaction itself, and closing
 * nft's netlink socket after a deletion waits for an RCU grace period (docs/performance.md).
 *
 * Synchronous: a batch of one instance's elements is parsed, sent and acknowledged within the
 * call. Large batches are the caller's to split (nft-plan.ts chunks them).
 */
export class Libnftables {
  private binding: Binding | undefined;

  private constructor(binding: Binding) {
    this.binding = binding;
  }

  /** Loads libnftables.so.1 (Debian's libnftables1, a dependency of nftables); throws when it is not installed. */
  static open(): Libnftables {
    return new Libnftables(bind());
  }

  /**
   * Equivalent to: `nft -f - <<< "$commands"`: all of them in one transaction, applied whole
   * or not at all. Throws a KernelError carrying the errno libnftables names in its message.
   */
  run(operation: string, commands: string): void {
    const binding = this.binding;
    if (binding === undefined) throw new KernelError(operation, undefined, { detail: "the nftables context is closed" });
    if (binding.run(binding.context, commands) !== 0) {
      const text = binding.error(binding.context) ?? "";
      throw new KernelError(operation, errnoOf(text), { reason: reasonOf(text), cause: new Error(text.trim()) });
    }
  }

  close(): void {
    const binding = this.binding;
    this.binding = undefined;
    if (binding !== undefined) binding.free(binding.context);
  }
}
