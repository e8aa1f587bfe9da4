// fdatasync of other files before a ledger commit on this thread (SqliteStoreOptions
// .syncBeforeCommit); writer-thread.ts does the same on its thread, in plain JavaScript.
import { closeSync, fdatasyncSync, openSync } from 'node:fs';

export class SyncFirst {
  readonly paths: readonly string[];
  readonly #fds = new Map<string, number>();

  constructor(paths: readonly string[]) {
    this.paths = paths;
  }

  /** Everything written to the files so far is on disk when this returns; a file not there yet has nothing to sync. */
  sync(): void {
    for (const path of this.paths) {
      let fd = this.#fds.get(path);
      if (fd === undefined) {
        try {
          fd = openSync(path, 'r');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        this.#fds.set(path, fd);
      }
      fdatasyncSync(fd);
    }
  }

  close(): void {
    for (const fd of this.#fds.values()) closeSync(fd);
    this.#fds.clear();
  }
}
