/**
 * One queue per key (volume name), never a global lock: a hung server delays only the
 * calls for its own volumes. Callers wait in order instead of failing fast, because dockerd
 * does not retry a failed call; a caller may bound its wait, because dockerd stops waiting
 * for an answer after its own timeout, and a Mount done after that leaks a reference.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, task: () => Promise<T>, options: { maxWaitMs?: number | undefined; onTimeout?: () => Error } = {}): Promise<T> {
    const previous = this.tails.get(key);
    let gaveUp = false;
    let timer: NodeJS.Timeout | undefined;
    const current = (previous ?? Promise.resolve()).catch(() => undefined).then(() => {
      clearTimeout(timer);
      // A caller that gave up keeps its place in the queue but does nothing when its turn comes.
      return gaveUp ? (undefined as T) : task();
    });
    this.tails.set(key, current);
    void current
      .catch(() => undefined)
      .finally(() => {
        if (this.tails.get(key) === current) this.tails.delete(key);
      });
    if (previous === undefined || options.maxWaitMs === undefined) return current;
    const maxWaitMs = options.maxWaitMs;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        gaveUp = true;
        reject(options.onTimeout?.() ?? new Error(`waited more than ${maxWaitMs} ms for '${key}'`));
      }, maxWaitMs);
    });
    return Promise.race([current, timeout]);
  }
}
