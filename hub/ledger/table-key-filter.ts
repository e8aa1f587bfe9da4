/**
 * A negative cache over one key column of a table, filled in the background: a BloomFilter that
 * answers "maybe" for every key until the table has been read in full. Start-up does not wait
 * on the scan (~1 s per million rows on this VM, bench `restore`), and nothing is missed while
 * it runs: the caller still reads the table for every key until then.
 *
 * The one rule that makes it safe: every key the caller writes to the table it adds here, before
 * or with the write. The scan then never has to see rows written while it runs (it may not: it
 * reads the key index in key order, and a new key can land behind its cursor).
 *
 * A filter only grows; `refill()` replaces it with one read afresh from the table (after pruning),
 * the old one answering until the new one is full.
 */
import { BloomFilter } from './bloom-filter.ts';

/**
 * Up to `limit` keys greater than `after`, in ascending key order (the first call gets '': every
 * key is greater). Reads the column's own index.
 */
export type ReadKeys = (after: string, limit: number) => string[];

/** Keys per turn of the event loop: a few ms here, so requests interleave with the scan. */
const CHUNK_KEYS = 2048;

/** One filter and the scan that fills it. */
class Generation {
  readonly filter: BloomFilter;
  complete = false;
  stopped = false;
  readonly filled: Promise<boolean>;

  constructor(read: ReadKeys, expectedKeys: number) {
    this.filter = new BloomFilter(expectedKeys);
    this.filled = new Promise((resolve) => {
      let after = '';
      const step = (): void => {
        if (this.stopped) return resolve(false);
        try {
          const keys = read(after, CHUNK_KEYS);
          for (const key of keys) this.filter.add(key);
          if (keys.length < CHUNK_KEYS) {
            this.complete = true;
            return resolve(true);
          }
          after = keys[keys.length - 1]!;
        } catch {
          // Stays incomplete: the caller reads the table for every key, as without a filter.
          return resolve(false);
        }
        // Not unref'd: the event loop would then block in its poll between chunks. stop() ends it.
        setImmediate(step);
      };
      setImmediate(step);
    });
  }
}

export class TableKeyFilter {
  readonly #read: ReadKeys;
  /** Answers lookups (the newest complete one, or the first while it fills). */
  #current: Generation;
  /** Filling to replace #current (refill). */
  #next: Generation | undefined;
  #stopped = false;

  /** Starts reading on the next turn; `expectedKeys` sizes the filter (rows now and to come). */
  constructor(read: ReadKeys, expectedKeys: number) {
    this.#read = read;
    this.#current = new Generation(read, expectedKeys);
  }

  /** Every key written to the table from now on must be added here (before or with its write). */
  add(key: string): void {
    this.#current.filter.add(key);
    this.#next?.filter.add(key);
  }

  /** False only when the table surely lacks `key`: never before a scan has finished. */
  mightContain(key: string): boolean {
    return !this.#current.complete || this.#current.filter.mightContain(key);
  }

  get complete(): boolean {
    return this.#current.complete;
  }

  /** Keys in the answering filter (the table's at its scan, and every one added since). */
  get keys(): number {
    return this.#current.filter.keys;
  }

  /** Resolves true once the answering filter (or the one replacing it) is full, false if its scan stopped or failed. */
  filled(): Promise<boolean> {
    return (this.#next ?? this.#current).filled;
  }

  /**
   * Reads the table afresh into a new filter sized for `expectedKeys`, which takes over when full
   * (keys of pruned rows are then gone). No-op while a refill runs or after stop().
   */
  refill(expectedKeys: number): void {
    if (this.#next || this.#stopped) return;
    const next = new Generation(this.#read, expectedKeys);
    this.#next = next;
    void next.filled.then((ok) => {
      if (this.#next !== next) return;
      this.#next = undefined;
      if (ok) this.#current = next;
    });
  }

  /** Ends any scan (the file is closing); the filters then stay as they are. */
  stop(): void {
    this.#stopped = true;
    this.#current.stopped = true;
    if (this.#next) this.#next.stopped = true;
  }
}
