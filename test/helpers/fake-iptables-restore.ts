import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface FakeIptablesRestoreOptions {
  /** What `--version` names as the backend. Default "legacy". */
  readonly backend?: "legacy" | "nf_tables";
}

/**
 * A stand-in for iptables-restore that behaves as the real one does where our code relies on
 * it: it reads its input line by line as it arrives, echoes comment lines to stdout when given
 * --verbose, numbers lines from its own start (across batches), and stops at the first line it
 * refuses. The input asks it to: a line with BAD fails ("line N failed", exit 1), one with
 * LOCKED fails as if it lost the race for the xtables lock (exit 4), one with SLOW takes 0.3 s.
 * It records its arguments, its input and its runs (`--version` aside) for the test to read.
 */
export function fakeIptablesRestore(t: { teardown: (fn: () => void) => void }, options: FakeIptablesRestoreOptions = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-iptables-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const command = path.join(dir, "iptables-restore");
  fs.writeFileSync(
    command,
    `#!/bin/sh
if [ "$1" = --version ]; then echo "iptables-restore v1.8.9 (${options.backend ?? "legacy"})"; exit 0; fi
printf '%s\\n' "$*" > "${dir}/args"
echo $$ >> "${dir}/runs"
verbose=
for arg in "$@"; do [ "$arg" = --verbose ] && verbose=1; done
n=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1))
  printf '%s\\n' "$line" >> "${dir}/input"
  case "$line" in
    *LOCKED*) echo "Another app is currently holding the xtables lock." >&2; exit 4 ;;
    *BAD*) echo "iptables-restore: line $n failed: Bad rule (does a matching rule exist in that chain?)." >&2; exit 1 ;;
    *SLOW*) sleep 0.3 ;;
    '#'*) [ -n "$verbose" ] && printf '%s\\n' "$line" ;;
  esac
done
exit 0
`,
    { mode: 0o755 },
  );
  const save = path.join(dir, "iptables-save");
  fs.writeFileSync(save, "#!/bin/sh\nprintf '*filter\\n:FORWARD ACCEPT [0:0]\\nCOMMIT\\n'\n", { mode: 0o755 });
  const read = (name: string) => (fs.existsSync(path.join(dir, name)) ? fs.readFileSync(path.join(dir, name), "utf8") : "");
  return {
    command,
    save,
    /** The arguments of its last run, space-separated, with a newline. */
    args: () => read("args"),
    /** Every line it has read, over all its runs. */
    input: () => read("input"),
    /** The pid of each of its runs for a restore, in order. */
    pids: () => read("runs").split("\n").filter(Boolean).map(Number),
    /** How many times it was started for a restore. */
    runs: () => read("runs").split("\n").filter(Boolean).length,
  };
}
