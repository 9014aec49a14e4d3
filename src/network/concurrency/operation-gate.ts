/**
 * Lets instance operations run side by side ("shared") while a reconcile runs alone
 * ("exclusive"): a reconcile waits for the operations in flight and holds new ones back,
 * so that it compares the kernel with a store nobody is changing.
 */
export class OperationGate {
  private active = 0;
  private exclusiveTail: Promise<void> = Promise.resolve();
  private exclusivePending = 0;
  private reopened: Promise<void> = Promise.resolve();
  private drained: (() => void) | undefined;

  async shared<T>(work: () => Promise<T>): Promise<T> {
    // Checking and counting happen in one synchronous step, so an exclusive section
    // that starts in between cannot miss this operation.
    while (this.exclusivePending > 0) await this.reopened;
    this.active++;
    try {
      return await work();
    } finally {
      this.active--;
      if (this.active === 0) this.drained?.();
    }
  }

  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    this.exclusivePending++;
    let reopen!: () => void;
    const previous = this.exclusiveTail;
    const mine = new Promise<void>((resolve) => (reopen = resolve));
    this.exclusiveTail = previous.then(() => mine);
    this.reopened = this.exclusiveTail;
    await previous;
    try {
      if (this.active > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      this.drained = undefined;
      return await work();
    } finally {
      this.exclusivePending--;
      reopen();
    }
  }
}
