// Group fsync of the WAL file off the main thread (libuv pool), for durability 'pipelined':
// SQLite commits with synchronous=NORMAL (ordered, atomic, not yet on disk) and an outcome is
// released only after an fsync of the WAL that started after its commit has completed.
// fsync(2) flushes the inode whatever descriptor it is called on.
import { closeSync, fsync, openSync } from 'node:fs';

export class WalSyncer {
  readonly #path: string;
  #fd: number | null = null;
  #running: Promise<void> | null = null;
  #again: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | null = null;

  constructor(walPath: string) {
    this.#path = walPath;
  }

  /** Resolves once everything written to the WAL before this call is on disk. */
  sync(): Promise<void> {
    if (this.#running === null) {
      this.#running = this.#fsyncOnce().finally(() => this.#next());
      return this.#running;
    }
    // One fsync in flight: the commits since it started wait for the next one (group fsync).
    if (this.#again === null) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#again = { promise, resolve, reject };
    }
    return this.#again.promise;
  }

  #next(): void {
    this.#running = null;
    const again = this.#again;
    this.#again = null;
    if (again) this.sync().then(again.resolve, again.reject);
  }

  #fsyncOnce(): Promise<void> {
    this.#fd ??= openSync(this.#path, 'r');
    const fd = this.#fd;
    return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /** Waits for in-flight fsyncs, then closes the descriptor. */
  async close(): Promise<void> {
    while (this.#running !== null || this.#again !== null) await (this.#again?.promise ?? this.#running)?.catch(() => undefined);
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}
