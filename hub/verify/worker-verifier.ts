/**
 * A `SignatureVerifier` on a pool of worker threads, so Ed25519 checks (~50 µs each with
 * libsodium on this VM, ~105 µs with OpenSSL) run off the hub's event loop, and so does the
 * signing of results (`resultSigner`: canonical text, two signatures, wire bytes, ~60 µs).
 * Micro-batching: calls made in one event-loop turn are collected and sent on setImmediate in
 * messages of at most `maxBatch` (one copy, one wake-up each), spread over the workers; answers
 * come back per message, so the first requests of a busy turn go on while the rest are still
 * being worked on. A turn with only a few items (low load) is done inline: the hop would cost
 * more.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { sodiumAvailable, verify } from '../../protocol/index.ts';
import { signResultInline, type ResultSigner, type ResultSigningJob } from './result-signing.ts';
import type { SignatureVerifier, VerifyItem } from './verifier.ts';

export interface WorkerVerifierOptions {
  /** Worker threads (default: available cores, at most 4). */
  readonly workers?: number;
  /**
   * Largest batch one worker gets in one message (default 32, ~4 ms of OpenSSL here). Small
   * enough that verdicts stream back while the rest are checked: with 200 requests in a turn,
   * one big message per worker made the whole turn wait for its slowest half, and the cores took
   * turns (event loop idle while workers verified, and back) instead of overlapping.
   */
  readonly maxBatch?: number;
  /**
   * A turn with at most this many signatures (or results to sign) is done on the calling thread
   * (protocol `verify`, same strict rule): at low load a thread hop costs more than the check and
   * adds a wake-up to the latency tail (1000 rps p99 over MQTT: 46 ms with 2, 28 ms with 8).
   * Default 8 (~0.4 ms of libsodium); 0 = never.
   */
  readonly inlineMaxBatch?: number;
  /** The workers' Ed25519: libsodium (default where protocol's back-end is libsodium) or node:crypto's OpenSSL. */
  readonly backend?: 'sodium' | 'node';
}

interface Pending<I, O> {
  readonly item: I;
  readonly done: (out: O) => void;
  readonly fail: (err: unknown) => void;
}

type PendingVerify = Pending<VerifyItem, boolean>;
type PendingSign = Pending<{ readonly job: ResultSigningJob; readonly secretKey: Uint8Array }, Uint8Array>;

/** One message out to a worker; `answer` settles its entries from the worker's reply. */
interface Job {
  readonly size: number;
  readonly answer: (reply: WorkerReply) => void;
  readonly fail: (err: unknown) => void;
}

type WorkerReply = { id: number; verdicts: Uint8Array } | { id: number; wires: Array<Uint8Array | string> };

interface PoolWorker {
  worker: Worker;
  readonly jobs: Map<number, Job>;
  load: number;
}

const WORKER_URL = new URL('./crypto-worker.mjs', import.meta.url);
const MAX_MESSAGE_BYTES = 1 << 20;
const MIN_PER_MESSAGE = 16;

export class WorkerVerifier implements SignatureVerifier {
  private readonly pool: PoolWorker[] = [];
  private queue: PendingVerify[] = [];
  private signQueue: PendingSign[] = [];
  private scheduled = false;
  private nextJobId = 1;
  private closed = false;
  private readonly maxBatch: number;
  private readonly inlineMaxBatch: number;
  private readonly useSodium: boolean;

  constructor(options: WorkerVerifierOptions = {}) {
    const count = options.workers ?? Math.max(1, Math.min(4, availableParallelism()));
    if (!Number.isInteger(count) || count < 1) throw new TypeError(`WorkerVerifier: workers must be a positive integer (${count})`);
    this.maxBatch = options.maxBatch ?? 32;
    this.inlineMaxBatch = options.inlineMaxBatch ?? 8;
    this.useSodium = (options.backend ?? (sodiumAvailable ? 'sodium' : 'node')) === 'sodium';
    for (let i = 0; i < count; i++) this.pool.push(this.spawn());
  }

  private spawn(): PoolWorker {
    const entry: PoolWorker = { worker: new Worker(WORKER_URL, { workerData: { sodium: this.useSodium } }), jobs: new Map(), load: 0 };
    entry.worker.on('message', (reply: WorkerReply) => {
      const job = entry.jobs.get(reply.id);
      if (!job) return;
      entry.jobs.delete(reply.id);
      entry.load -= job.size;
      job.answer(reply);
    });
    const failAll = (err: unknown) => {
      for (const job of entry.jobs.values()) job.fail(err);
      entry.jobs.clear();
      entry.load = 0;
      if (!this.closed) {
        // Replace the dead worker so one crash doesn't shrink the pool for good.
        const index = this.pool.indexOf(entry);
        if (index >= 0) this.pool[index] = this.spawn();
      }
    };
    entry.worker.on('error', failAll);
    entry.worker.on('exit', (code) => {
      if (!this.closed) failAll(new Error(`WorkerVerifier: worker exited with code ${code}`));
    });
    return entry;
  }

  verifyMany(items: readonly VerifyItem[]): Promise<boolean[]> {
    if (this.closed) return Promise.reject(new Error('WorkerVerifier: closed'));
    if (items.length === 0) return Promise.resolve([]);
    const verdicts = Promise.all(
      items.map(
        (item) =>
          new Promise<boolean>((done, fail) => {
            this.queue.push({ item, done, fail });
          }),
      ),
    );
    this.schedule();
    return verdicts;
  }

  resultSigner(secretKey: Uint8Array): ResultSigner {
    const key = Uint8Array.from(secretKey);
    return {
      signResult: (job) => {
        if (this.closed) return Promise.reject(new Error('WorkerVerifier: closed'));
        const wire = new Promise<Uint8Array>((done, fail) => this.signQueue.push({ item: { job, secretKey: key }, done, fail }));
        this.schedule();
        return wire;
      },
    };
  }

  /** Everything queued in this turn goes out together on the next setImmediate. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const queue = this.queue;
    const signQueue = this.signQueue;
    this.queue = [];
    this.signQueue = [];
    if (queue.length > 0 && queue.length <= this.inlineMaxBatch) {
      for (const p of queue) p.done(verify(p.item.signature, p.item.message, p.item.publicKey));
    } else {
      this.spread(queue, (target, part) => this.sendVerify(target, part));
    }
    if (signQueue.length > 0 && signQueue.length <= this.inlineMaxBatch) {
      for (const p of signQueue) {
        try {
          p.done(signResultInline(p.item.secretKey, p.item.job));
        } catch (err) {
          p.fail(err);
        }
      }
    } else {
      this.spread(signQueue, (target, part) => this.sendSign(target, part));
    }
  }

  /**
   * Splits across the workers (least loaded first), at most maxBatch per message; a small batch
   * goes to one worker whole: a message costs about as much as a verify.
   */
  private spread<P>(queue: P[], send: (target: PoolWorker, part: P[]) => void): void {
    if (queue.length === 0) return;
    const perWorker = Math.min(this.maxBatch, Math.max(MIN_PER_MESSAGE, Math.ceil(queue.length / this.pool.length)));
    for (let start = 0; start < queue.length; start += perWorker) {
      const target = this.pool.reduce((a, b) => (b.load < a.load ? b : a));
      send(target, queue.slice(start, start + perWorker));
    }
  }

  private post(target: PoolWorker, job: Job, message: object, transfer: ArrayBuffer[] = []): void {
    const id = this.nextJobId++;
    target.jobs.set(id, job);
    target.load += job.size;
    target.worker.postMessage({ id, ...message }, transfer);
  }

  private sendSign(target: PoolWorker, entries: PendingSign[]): void {
    // Jobs of one turn share the hub key; a different key (tests) starts its own message.
    const byKey = new Map<Uint8Array, PendingSign[]>();
    for (const p of entries) {
      const group = byKey.get(p.item.secretKey);
      if (group) group.push(p);
      else byKey.set(p.item.secretKey, [p]);
    }
    for (const [secretKey, group] of byKey) {
      const job: Job = {
        size: group.length,
        answer: (reply) => {
          if (!('wires' in reply)) return;
          group.forEach((p, i) => {
            const wire = reply.wires[i];
            if (typeof wire === 'string' || wire === undefined) p.fail(new TypeError(`signResult: ${wire ?? 'no answer'}`));
            else p.done(wire);
          });
        },
        fail: (err) => group.forEach((p) => p.fail(err)),
      };
      this.post(target, job, { kind: 'sign', secretKey, jobs: group.map((p) => p.item.job) });
    }
  }

  private sendVerify(target: PoolWorker, entries: PendingVerify[]): void {
    let size = 0;
    for (const p of entries) size += 100 + p.item.message.length;
    // Not from Buffer's shared pool: the whole ArrayBuffer is transferred to the worker.
    const buf = Buffer.alloc(size);
    let off = 0;
    const valid: PendingVerify[] = [];
    for (const p of entries) {
      const { signature, publicKey, message } = p.item;
      // Wrong sizes are invalid signatures, decided here without a round trip.
      if (signature.length !== 64 || publicKey.length !== 32 || message.length > MAX_MESSAGE_BYTES) {
        p.done(false);
        continue;
      }
      buf.set(signature, off);
      buf.set(publicKey, off + 64);
      buf.writeUInt32LE(message.length, off + 96);
      buf.set(message, off + 100);
      off += 100 + message.length;
      valid.push(p);
    }
    if (valid.length === 0) return;
    const packed = new Uint8Array(buf.buffer, buf.byteOffset, off);
    const job: Job = {
      size: valid.length,
      answer: (reply) => {
        if ('verdicts' in reply) valid.forEach((p, i) => p.done(reply.verdicts[i] === 1));
      },
      fail: (err) => valid.forEach((p) => p.fail(err)),
    };
    this.post(target, job, { buf: packed, count: valid.length }, [packed.buffer]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('WorkerVerifier: closed');
    for (const p of [...this.queue, ...this.signQueue]) p.fail(err);
    this.queue = [];
    this.signQueue = [];
    await Promise.all(
      this.pool.map(async (entry) => {
        for (const job of entry.jobs.values()) job.fail(err);
        entry.jobs.clear();
        await entry.worker.terminate();
      }),
    );
  }
}
