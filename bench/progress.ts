/** Progress lines on stderr, stamped with the time since the run started; the results go to stdout. */
export class Progress {
  private readonly started = performance.now();

  step(message: string): void {
    const seconds = ((performance.now() - this.started) / 1000).toFixed(1).padStart(7);
    process.stderr.write(`[bench ${seconds}s] ${message}\n`);
  }
}
