interface Pending<T> {
  readonly item: T;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Runs the items that arrive while a run is in progress together in the next run, so that
 * N concurrent operations cost a few kernel transactions instead of N. When a run of
 * several items fails, each is run alone, so that one bad item fails only its own caller.
 * With `runAlone`, every item of a failed run (even a lone one) is retried with it: for runs
 * that may have been partly applied, it can do only what is left.
 */
export class CoalescingQueue<T> {
  private readonly run: (items: readonly T[]) => Promise<void>;
  private readonly runAlone: ((item: T) => Promise<void>) | undefined;
  private queue: Pending<T>[] = [];
  private running = false;

  constructor(run: (items: readonly T[]) => Promise<void>, runAlone?: (item: T) => Promise<void>) {
    this.run = run;
    this.runAlone = runAlone;
  }

  submit(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      const pending = this.queue;
      this.queue = [];
      try {
        await this.run(pending.map((p) => p.item));
        for (const p of pending) p.resolve();
      } catch (error) {
        const runAlone = this.runAlone;
        if (runAlone !== undefined) {
          for (const p of pending) await runAlone(p.item).then(p.resolve, p.reject);
        } else if (pending.length === 1) {
          pending[0]!.reject(error);
        } else {
          for (const p of pending) await this.run([p.item]).then(p.resolve, p.reject);
        }
      }
    }
    this.running = false;
  }
}
