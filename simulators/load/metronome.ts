/**
 * Wakes the event loop at a given time with sub-millisecond precision and without spinning: a
 * worker thread sleeps in `Atomics.wait` (a futex with a timeout) and posts a message when the
 * time has come. Node's own timers have 1 ms granularity (measured here: p50 ~0.6 ms late), and
 * spinning on setImmediate to wait out the last millisecond cost the load generator ~15 % of a
 * core plus a scavenge every ~0.7 s at 100 requests/s — on the machine whose hub it measures.
 * One pending wake-up at a time; `at` replaces it (the worker is woken to re-read it).
 */
import { Worker } from 'node:worker_threads';

// Plain CommonJS so the worker needs no TypeScript loader. Shared cells: [0] the wake-up's
// sequence number (-1: stop), then the due time as absolute ms (both threads' clocks agree).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const seqCell = new Int32Array(workerData.shared, 0, 1);
const atCell = new Float64Array(workerData.shared, 8, 1);
let fired = 0;
for (;;) {
  const seq = Atomics.load(seqCell, 0);
  if (seq < 0) break;
  if (seq === fired) { Atomics.wait(seqCell, 0, seq); continue; }
  const left = atCell[0] - (performance.timeOrigin + performance.now());
  if (left > 0) { Atomics.wait(seqCell, 0, seq, left); continue; }
  fired = seq;
  parentPort.postMessage(seq);
}
`;

export class Metronome {
  readonly #worker: Worker;
  readonly #seqCell: Int32Array;
  readonly #atCell: Float64Array;
  #seq = 0;
  #pending: (() => void) | undefined;

  constructor() {
    const shared = new SharedArrayBuffer(16);
    this.#seqCell = new Int32Array(shared, 0, 1);
    this.#atCell = new Float64Array(shared, 8, 1);
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { shared } });
    this.#worker.on('message', (seq: number) => {
      if (seq !== this.#seq) return; // replaced meanwhile
      const cb = this.#pending;
      this.#pending = undefined;
      this.#worker.unref();
      cb?.();
    });
    this.#worker.unref();
  }

  /** Calls `cb` once `performance.now()` has reached `atMs`. */
  at(atMs: number, cb: () => void): void {
    this.#pending = cb;
    this.#seq = (this.#seq % 0x7fff_ffff) + 1; // stays positive: -1 means stop
    this.#atCell[0] = performance.timeOrigin + atMs;
    Atomics.store(this.#seqCell, 0, this.#seq);
    Atomics.notify(this.#seqCell, 0);
    this.#worker.ref(); // a pending wake-up keeps the process alive, as a timer would
  }

  async close(): Promise<void> {
    this.#pending = undefined;
    Atomics.store(this.#seqCell, 0, -1);
    Atomics.notify(this.#seqCell, 0);
    await this.#worker.terminate();
  }
}
