/**
 * A negative cache over one column of a table, filled in the background: a BloomFilter that
 * answers "maybe" for every key until the table has been read in full. Start-up does not wait
 * on the scan (~1 s per million rows on this VM, bench `restore`), and nothing is missed while
 * it runs: the caller still reads the table for every key until then. Keys the caller writes
 * meanwhile it adds itself, as it always does.
 */
import { BloomFilter } from './bloom-filter.ts';

/** Keys after `afterRowid` in rowid order, at most `limit`, as [rowid, key] pairs. */
export type ReadKeys = (afterRowid: number, limit: number) => Array<[number, string]>;

/** Rows per turn of the event loop: a few ms here, so requests interleave with the scan. */
const CHUNK_ROWS = 2048;

export class TableKeyFilter {
  readonly #filter: BloomFilter;
  #complete = false;
  #stopped = false;
  readonly #filled: Promise<boolean>;

  /** Starts reading on the next turn; `expectedKeys` sizes the filter (rows now and to come). */
  constructor(read: ReadKeys, expectedKeys: number) {
    this.#filter = new BloomFilter(expectedKeys);
    this.#filled = new Promise((resolve) => {
      let after = 0;
      const step = (): void => {
        if (this.#stopped) return resolve(false);
        let rows: Array<[number, string]>;
        try {
          rows = read(after, CHUNK_ROWS);
        } catch {
          // Stays incomplete: every lookup reads the table, as without a filter.
          return resolve(false);
        }
        for (const [rowid, key] of rows) {
          this.#filter.add(key);
          after = rowid;
        }
        if (rows.length < CHUNK_ROWS) {
          this.#complete = true;
          return resolve(true);
        }
        // Not unref'd: the event loop would then block in its poll between chunks. close() stops it.
        setImmediate(step);
      };
      setImmediate(step);
    });
  }

  /** Every key written from now on must be added here (before or with its write). */
  add(key: string): void {
    this.#filter.add(key);
  }

  /** False only when the table surely lacks `key`: never before the scan has finished. */
  mightContain(key: string): boolean {
    return !this.#complete || this.#filter.mightContain(key);
  }

  get complete(): boolean {
    return this.#complete;
  }

  /** Resolves true once the table is read, false if the scan stopped or failed first. */
  filled(): Promise<boolean> {
    return this.#filled;
  }

  /** Ends the scan (the file is closing); the filter then stays as it is. */
  stop(): void {
    this.#stopped = true;
  }
}
