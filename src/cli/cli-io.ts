/** What a command reads and writes: the process's own streams in production, buffers in tests. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  /** Read by `apply -f -`. */
  readonly stdin: AsyncIterable<string | Buffer>;
  readonly env: NodeJS.ProcessEnv;
  /** Aborted on the first SIGINT or SIGTERM, with the signal's name as the reason. */
  readonly signal: AbortSignal;
}
