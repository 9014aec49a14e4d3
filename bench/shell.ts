/** Turning argv arrays into bash text, and rule specs into argv. Pure. */

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one argument for bash, only when it needs it. */
export function shellQuote(arg: string): string {
  if (SAFE.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** One command line: every argument quoted as needed. */
export function shellLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

/**
 * Splits an iptables rule spec in iptables-save form (e.g. `-m comment --comment "rik:a"`)
 * into the arguments iptables takes: whitespace separates them, double quotes group them.
 */
export function splitSpec(spec: string): string[] {
  const args: string[] = [];
  let current = "";
  let quoted = false;
  let started = false;
  for (const char of spec) {
    if (char === '"') {
      quoted = !quoted;
      started = true;
    } else if (!quoted && /\s/.test(char)) {
      if (started) args.push(current);
      current = "";
      started = false;
    } else {
      current += char;
      started = true;
    }
  }
  if (quoted) throw new Error(`unbalanced quote in rule spec: ${spec}`);
  if (started) args.push(current);
  return args;
}
