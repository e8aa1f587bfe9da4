// Background WAL checkpoints on a second connection in a worker thread, so the engine's thread
// only appends to the WAL and fsyncs it; copying pages into the database file (and its fsync)
// happens beside it. A PASSIVE checkpoint never blocks the writer (sqlite.org/wal.html §3).
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Plain CommonJS so the worker needs no TypeScript loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driverPath);
let db = null;
let stopped = false;
let timer = null;
try {
  db = new Database(workerData.file, { fileMustExist: true });
  db.pragma('busy_timeout = 1000');
  db.pragma('synchronous = FULL');
  timer = setInterval(() => {
    try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage({ error: String(err) }); }
  }, workerData.intervalMs);
} catch (err) {
  parentPort.postMessage({ error: String(err) });
}
parentPort.on('message', (m) => {
  if (m === 'stop' && !stopped) {
    stopped = true;
    if (timer) clearInterval(timer);
    if (db) db.close();
    parentPort.postMessage('stopped');
  }
});
`;

export class Checkpointer {
  readonly #worker: Worker;
  #stopped: Promise<void> | null = null;

  constructor(file: string, intervalMs: number) {
    if (!(Number.isInteger(intervalMs) && intervalMs > 0)) throw new TypeError(`intervalMs=${intervalMs}`);
    const driverPath = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, intervalMs, driverPath } });
    this.#worker.unref();
    // Best effort: if the worker fails, the writer's own autocheckpoint still bounds the WAL.
    this.#worker.on('error', () => undefined);
  }

  stop(): Promise<void> {
    this.#stopped ??= new Promise<void>((resolve) => {
      const done = (m: unknown): void => {
        if (m === 'stopped') void this.#worker.terminate().then(() => resolve());
      };
      this.#worker.on('message', done);
      this.#worker.once('error', () => resolve());
      this.#worker.once('exit', () => resolve());
      this.#worker.postMessage('stop');
    });
    return this.#stopped;
  }
}
