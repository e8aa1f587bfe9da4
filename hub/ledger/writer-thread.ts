// Commits batches on a second connection in a worker thread (synchronous=FULL: a commit returns
// only after the WAL is fsynced), so the engine's thread decides the next batch while this one
// is written and flushed: the two cores pipeline JavaScript against SQLite. Batches that queued
// up while a commit was being flushed go into the next transaction together (group commit: one
// fsync for all of them), in the order they were handed over. A failed transaction fails all of
// its batches and every later one (each was decided on top of the one before), and the engine
// stops (crash-only).
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { COMMIT_SOURCE, type EncodedBatch } from './commit-sql.ts';

// Plain CommonJS so the worker needs no TypeScript loader.
const WORKER_SOURCE = `
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads');
const Database = require(workerData.driverPath);
let commitAll = null;
let failed = null;
let db = null;
try {
  db = new Database(workerData.file, { fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  // seed 004 claim 25: a commit is on disk before its outcome is released.
  db.pragma('synchronous = FULL');
  db.pragma('cache_size = -' + workerData.cacheKiB);
  db.pragma('wal_autocheckpoint = ' + workerData.walAutocheckpointPages);
  commitAll = (${COMMIT_SOURCE})(db);
} catch (err) {
  failed = { code: err && err.code, message: String(err && err.message || err) };
}
function stop() {
  if (db && db.open) db.close();
  parentPort.postMessage({ stopped: true });
}
parentPort.on('message', (first) => {
  if (first.stop) return stop();
  const queued = [first];
  let stopAfter = false;
  for (let next; (next = receiveMessageOnPort(parentPort)) !== undefined; ) {
    if (next.message.stop) { stopAfter = true; break; }
    queued.push(next.message);
  }
  if (failed === null) {
    const t0 = process.hrtime.bigint();
    try {
      commitAll(queued.map((m) => m.batch));
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      queued.forEach((m, i) => parentPort.postMessage({ n: m.n, ms, lead: i === 0 }));
    } catch (err) {
      failed = { code: err && err.code, message: String(err && err.message || err) };
      for (const m of queued) parentPort.postMessage({ n: m.n, error: failed });
    }
  } else {
    for (const m of queued) parentPort.postMessage({ n: m.n, error: { code: 'after_failure', message: 'an earlier batch failed: ' + failed.message } });
  }
  if (stopAfter) stop();
});
`;

export interface WriterThreadOptions {
  readonly cacheKiB: number;
  readonly walAutocheckpointPages: number;
  /** Most batches handed over and not yet committed; commit() waits beyond it (backpressure). */
  readonly maxInFlight: number;
}

/** A failed commit in the writer; `sqliteCode` is SQLite's error code when there is one. */
export class WriterThreadError extends Error {
  readonly sqliteCode: string | undefined;
  constructor(message: string, sqliteCode: string | undefined) {
    super(message);
    this.name = 'WriterThreadError';
    this.sqliteCode = sqliteCode;
  }
}

/** How long the writer's commits took (SQLite + fsync), over the last COMMIT_SAMPLES batches. */
export interface CommitTimes {
  /** Batches committed. */
  readonly commits: number;
  /** Transactions (fsyncs) they took: fewer than batches when queued batches were grouped. */
  readonly transactions: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const COMMIT_SAMPLES = 4096;

interface Waiting {
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export class WriterThread {
  readonly #worker: Worker;
  readonly #maxInFlight: number;
  readonly #waiting = new Map<number, Waiting>();
  #next = 1;
  #room: Array<() => void> = [];
  #exited: Error | null = null;
  /** The first error a handed-over batch failed with: every later batch was decided on top of it. */
  #failure: Error | null = null;
  #stopped: Promise<void> | null = null;
  /** One sample per batch (a group commit repeats its time for each of its batches). */
  readonly #commitMs = new Float64Array(COMMIT_SAMPLES);
  #commits = 0;
  #transactions = 0;

  constructor(file: string, options: WriterThreadOptions) {
    if (!(Number.isInteger(options.maxInFlight) && options.maxInFlight > 0)) throw new TypeError(`maxInFlight=${options.maxInFlight}`);
    this.#maxInFlight = options.maxInFlight;
    const driverPath = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file, driverPath, cacheKiB: options.cacheKiB, walAutocheckpointPages: options.walAutocheckpointPages },
    });
    this.#worker.on('message', (m: { n?: number; ms?: number; lead?: boolean; error?: { code?: string; message: string } }) => {
      if (m.n === undefined) return;
      if (m.ms !== undefined) {
        this.#commitMs[this.#commits++ % COMMIT_SAMPLES] = m.ms;
        if (m.lead) this.#transactions++;
      }
      const w = this.#waiting.get(m.n);
      this.#waiting.delete(m.n);
      if (m.error) this.#failure ??= new WriterThreadError(m.error.message, m.error.code);
      if (w) {
        if (m.error) w.reject(new WriterThreadError(m.error.message, m.error.code));
        else w.resolve();
      }
      this.#room.shift()?.();
    });
    const fail = (err: Error): void => {
      this.#exited = err;
      if (this.#waiting.size > 0) this.#failure ??= err;
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
      for (const r of this.#room.splice(0)) r();
    };
    this.#worker.on('error', (err) => fail(err));
    this.#worker.on('exit', () => fail(new WriterThreadError('writer thread exited', undefined)));
  }

  /** Commit durations since the last reset (the last 4,096 of them): the disk's fsync tail shows here. */
  commitTimes(): CommitTimes {
    const n = Math.min(this.#commits, COMMIT_SAMPLES);
    const sorted = this.#commitMs.slice(0, n).sort();
    const at = (q: number): number => (n === 0 ? 0 : (sorted[Math.min(n - 1, Math.floor(q * n))] as number));
    return { commits: this.#commits, transactions: this.#transactions, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: n === 0 ? 0 : (sorted[n - 1] as number) };
  }

  resetCommitTimes(): void {
    this.#commits = 0;
    this.#transactions = 0;
  }

  /**
   * Set, before any promise of it rejects, once a handed-over batch failed (its transaction, or
   * the thread): from then on nothing may commit, on this thread or another (see the store).
   */
  get failure(): Error | null {
    return this.#failure;
  }

  /** Batches handed over and not yet committed. */
  get inFlight(): number {
    return this.#waiting.size;
  }

  /**
   * Hands a batch over (waiting while maxInFlight are pending). `queued` resolves once handed
   * over; `committed` once the writer's COMMIT (with its fsync) has returned.
   */
  async commit(batch: EncodedBatch): Promise<{ committed: Promise<void> }> {
    while (this.#waiting.size >= this.#maxInFlight && this.#exited === null) await new Promise<void>((r) => this.#room.push(r));
    if (this.#exited !== null) throw this.#exited;
    const n = this.#next++;
    const committed = new Promise<void>((resolve, reject) => this.#waiting.set(n, { resolve, reject }));
    this.#worker.postMessage({ n, batch });
    return { committed };
  }

  /** Resolves when every batch handed over has committed or failed. */
  async idle(): Promise<void> {
    while (this.#waiting.size > 0) {
      const last = [...this.#waiting.keys()].pop() as number;
      await new Promise<void>((resolve) => {
        const w = this.#waiting.get(last) as Waiting;
        this.#waiting.set(last, {
          resolve: () => (w.resolve(), resolve()),
          reject: (e) => (w.reject(e), resolve()),
        });
      });
    }
  }

  /** Waits for pending commits, closes the writer's connection and ends the thread. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      await this.idle();
      if (this.#exited !== null) return;
      await new Promise<void>((resolve) => {
        this.#worker.on('message', (m: { stopped?: boolean }) => {
          if (m.stopped) resolve();
        });
        this.#worker.once('exit', () => resolve());
        this.#worker.postMessage({ stop: true });
      });
      await this.#worker.terminate();
    })();
    return this.#stopped;
  }
}
