/**
 * Runs tasks one at a time, in the order they were queued. Each cluster
 * monitor has one, so a MemberFault, an instance event, a tick and the
 * completion of a spawn never interleave their decisions: the log shows
 * terminate → remove → spawn in that order because the code cannot do
 * otherwise. A failing task does not stop the ones after it.
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();

  run<T>(task: () => T | Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  /** Resolves when every task queued so far has finished. */
  idle(): Promise<void> {
    return this.tail;
  }
}
