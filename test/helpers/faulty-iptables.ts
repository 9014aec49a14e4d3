/**
 * iptables-restore and iptables-save that run the real ones, except for the batches of one
 * instance, which they refuse: for the service, put `dir` first in its PATH. With them, a
 * CREATE of that instance fails at its rule append, and the rollback's rule delete fails
 * too (the delete is refused, and so is the iptables-save it is then retried from), while
 * every other batch reaches the real kernel.
 *
 * They claim the legacy backend (`--version`), so that every batch is exec'd whole rather
 * than streamed to a long-lived iptables-restore, which a wrapper reading its input whole
 * could not serve.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface FaultyIptables {
  /** The directory holding both commands. */
  readonly dir: string;
  /** Whether a rule delete of the instance was refused (iptables-save refuses from then on). */
  deleteRefused(): boolean;
  /** Lets every batch and iptables-save through from now on. */
  heal(): void;
}

const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

export function faultyIptables(t: { teardown(fn: () => void): void }, instanceId: string): FaultyIptables {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-faulty-iptables-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const real = (command: string) => execFileSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).trim();
  const marker = path.join(dir, "delete-refused");
  const healed = path.join(dir, "healed");
  fs.writeFileSync(
    path.join(dir, "iptables-restore"),
    `#!/bin/sh
if [ "$1" = --version ]; then echo "iptables-restore v1.8.9 (legacy)"; exit 0; fi
batch=$(cat)
[ -e ${quote(healed)} ] || case "$batch" in
  *${quote(`"rik:${instanceId}"`)}*)
    case "$batch" in
      *"
-D "*) : > ${quote(marker)}; echo "iptables-restore: line 2 failed: rule delete refused (injected)" >&2 ;;
      *) echo "iptables-restore: line 2 failed: rule append refused (injected)" >&2 ;;
    esac
    exit 1 ;;
esac
printf '%s\\n' "$batch" | exec ${quote(real("iptables-restore"))} "$@"
`,
    { mode: 0o755 },
  );
  fs.writeFileSync(
    path.join(dir, "iptables-save"),
    `#!/bin/sh
if [ -e ${quote(marker)} ]; then echo "iptables-save: refused (injected)" >&2; exit 1; fi
exec ${quote(real("iptables-save"))} "$@"
`,
    { mode: 0o755 },
  );
  return {
    dir,
    deleteRefused: () => fs.existsSync(marker),
    heal: () => {
      fs.writeFileSync(healed, "");
      fs.rmSync(marker, { force: true });
    },
  };
}
