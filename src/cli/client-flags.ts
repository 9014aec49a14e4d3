import * as grpc from "@grpc/grpc-js";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { CliUsageError } from "./cli-usage-error.js";

export const defaultSocketPath = "/run/rik-network/rik-network.sock";

const defaultTimeoutSeconds = 30;

/** The flags every client command takes (parseArgs options): where the service is, and how to print. */
export const clientFlags = {
  socket: { type: "string" },
  addr: { type: "string" },
  ca: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  insecure: { type: "boolean" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** The help text of `clientFlags`; `streaming` leaves --timeout out (a stream has no deadline). */
export function clientFlagsUsage({ streaming = false } = {}): string {
  return `Connection (default: the unix socket ${defaultSocketPath}):
  --socket PATH        the service's unix socket
  --addr HOST:PORT     the service's TCP listener, over TLS (--ca, --cert, --key) unless --insecure
  --ca FILE            PEM CA of the server's certificate (default: the system's CAs)
  --cert FILE          PEM client certificate, for a server that verifies clients (mTLS)
  --key FILE           PEM private key of --cert
  --insecure           plain TCP, for a server started with --insecure-tcp
${streaming ? "" : `  --timeout SECONDS    give up on the call after this long (default ${defaultTimeoutSeconds})\n`}Output:
  --json               print the responses as proto JSON instead of tables
  -h, --help           print this help and exit
`;
}

export interface ClientFlagValues {
  readonly socket?: string;
  readonly addr?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly insecure?: boolean;
  readonly timeout?: string;
  readonly json?: boolean;
}

/** Where and how to reach the service, from `clientFlags`. */
export interface ClientSettings {
  /** grpc-js target: `unix:/path` or `host:port`. */
  readonly target: string;
  readonly credentials: grpc.ChannelCredentials;
  /** Per-call deadline, in milliseconds. */
  readonly timeoutMs: number;
  readonly json: boolean;
}

/** Checks the connection flags and reads the TLS files. Throws CliUsageError naming the flag to fix. */
export async function clientSettings(values: ClientFlagValues): Promise<ClientSettings> {
  const timeoutSeconds = values.timeout === undefined ? defaultTimeoutSeconds : Number(values.timeout);
  if (!(timeoutSeconds > 0) || !/^\d+(\.\d+)?$/.test(values.timeout ?? "1")) {
    throw new CliUsageError(`--timeout ${values.timeout}: expected a number of seconds above 0, e.g. 30`);
  }
  const common = { timeoutMs: Math.round(timeoutSeconds * 1000), json: values.json === true };
  const tlsFlags = (["ca", "cert", "key"] as const).filter((flag) => values[flag] !== undefined);

  if (values.addr === undefined) {
    const tcpOnly = [...tlsFlags, ...(values.insecure === true ? ["insecure"] : [])];
    if (tcpOnly.length > 0) {
      throw new CliUsageError(`${tcpOnly.map((flag) => `--${flag}`).join(", ")} only apply with --addr HOST:PORT`);
    }
    const socketPath = resolve(values.socket ?? defaultSocketPath);
    return { ...common, target: `unix:${socketPath}`, credentials: grpc.credentials.createInsecure() };
  }
  if (values.socket !== undefined) throw new CliUsageError("pass either --socket or --addr, not both");
  if (!/^(\[[^\]]+\]|[^:[\]]+):\d+$/.test(values.addr)) {
    throw new CliUsageError(`--addr ${values.addr}: expected HOST:PORT, e.g. node-1.example:7100, or [IPV6]:PORT`);
  }
  if (values.insecure === true) {
    if (tlsFlags.length > 0) {
      throw new CliUsageError(`--insecure is plain TCP, so ${tlsFlags.map((flag) => `--${flag}`).join(", ")} would be ignored`);
    }
    return { ...common, target: values.addr, credentials: grpc.credentials.createInsecure() };
  }
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new CliUsageError("--cert and --key go together: pass both for a client certificate, or neither");
  }
  const [ca, cert, key] = await Promise.all(
    (["ca", "cert", "key"] as const).map((flag) => {
      const path = values[flag];
      if (path === undefined) return null;
      return readFile(path).catch((error: Error) => {
        throw new CliUsageError(`cannot read --${flag} ${path}: ${error.message}`);
      });
    }),
  );
  let credentials: grpc.ChannelCredentials;
  try {
    credentials = grpc.credentials.createSsl(ca, key, cert);
  } catch (error) {
    throw new CliUsageError(`cannot use --ca/--cert/--key: ${(error as Error).message}`);
  }
  return { ...common, target: values.addr, credentials };
}
