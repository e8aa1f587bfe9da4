/**
 * A long outbox (a backlog after an outage) must not freeze the terminal's event loop, which also
 * serves NFC taps and a gate's 0.2 s decision. A retry tick reads from the store only the
 * envelopes of the requests that are due (none on a tick with nothing due; reading every open
 * row each tick took ~0.5 s with 10,000 of them), and writes its sends' attempt counts in one
 * transaction (one fsync), not one per send. The real hub client against a real aedes broker on
 * loopback and a real store in a temp dir; the store's reads and attempt writes are counted by
 * wrapping its methods (the real ones still run). Timings: `npm run bench -- outbox`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HubClient } from '../../terminal/hub/hub-client.ts';
import { TerminalStore } from '../../terminal/store/terminal-store.ts';
import { eventually } from '../mqtt/fixtures.ts';
import { startHubClient, startLoopbackBroker, type LoopbackBroker } from './loopback-broker.ts';

/** More than two ticks' worth (a tick sends at most 256). */
const ROWS = 600;
const SENDS_PER_TICK = 256;
const RETRY_MS = 200; // the client's timer then ticks every 50 ms

const requestIdOf = (n: number): string => n.toString(16).padStart(32, '0');

/** Calls `count(result, args)` after each call of the store's `method`, which still runs (skipped where the store has no such method). */
function watch(store: TerminalStore, method: string, count: (result: unknown, args: unknown[]) => void): void {
  const target = store as unknown as Record<string, unknown>;
  const real = target[method];
  if (typeof real !== 'function') return;
  target[method] = (...args: unknown[]) => {
    const result = (real as (...a: unknown[]) => unknown).apply(store, args);
    count(result, args);
    return result;
  };
}

/** Outbox rows handed out with their envelopes, by any of the store's reading methods. */
function countEnvelopeReads(store: TerminalStore): { rows: number } {
  const reads = { rows: 0 };
  const rowsIn = (result: unknown): number => (result === undefined ? 0 : Array.isArray(result) ? result.length : result instanceof Map ? result.size : 1);
  for (const method of ['open', 'oldestOpen', 'get', 'openEnvelopes']) watch(store, method, (result) => (reads.rows += rowsIn(result)));
  return reads;
}

/** Writes (each its own commit and fsync) of attempt counts. */
function countAttemptWrites(store: TerminalStore): { commits: number } {
  const writes = { commits: 0 };
  for (const method of ['countAttempt', 'countAttempts']) watch(store, method, () => (writes.commits += 1));
  return writes;
}

/** Attempt counts as stored (read with SQL: not through the methods counted). */
function storedAttempts(store: TerminalStore): number[] {
  return (store.db.prepare('SELECT attempts FROM outbox ORDER BY rowid').all() as { attempts: number }[]).map((r) => r.attempts);
}

describe('re-sending a long outbox', () => {
  let dir: string | undefined;
  let broker: LoopbackBroker | undefined;
  let store: TerminalStore | undefined;
  let client: HubClient | undefined;
  afterEach(async () => {
    await client?.close();
    store?.close();
    await broker?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('reads only the envelopes due, none on a tick with nothing due, and writes a tick’s attempt counts in one commit', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-outbox-backlog-'));
    store = TerminalStore.open(join(dir, 'terminal.sqlite'));
    const s = store;
    s.atomically(() => {
      for (let n = 1; n <= ROWS; n++) s.enqueue({ requestId: requestIdOf(n), envelope: JSON.stringify({ n }), wallet: null, amountMinor: 100, local: true, createdMs: 1000 + n });
    });
    const reads = countEnvelopeReads(s);
    const writes = countAttemptWrites(s);
    broker = await startLoopbackBroker();
    const sent = broker.requests;
    const clocks = { monotonicMs: 1000 };
    ({ client } = startHubClient({ url: broker.url, store: s, monotonicMs: () => clocks.monotonicMs, retryMs: RETRY_MS }));

    // The backlog goes out in slices of 256, oldest first, each envelope read once.
    await eventually(() => sent.length === ROWS, 5000);
    expect(sent.map((e) => (JSON.parse(e) as { n: number }).n)).toEqual(Array.from({ length: ROWS }, (_, i) => i + 1));
    expect(reads.rows).toBe(ROWS);
    await eventually(() => storedAttempts(s).every((a) => a === 1));
    expect(writes.commits).toBe(Math.ceil(ROWS / SENDS_PER_TICK));

    // No monotonic time passes: every tick finds nothing due and reads nothing (the timer ticks every 50 ms).
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(sent.length).toBe(ROWS);
    expect(reads.rows).toBe(ROWS);
    expect(writes.commits).toBe(Math.ceil(ROWS / SENDS_PER_TICK));

    // retryMs later everything is due again: each envelope read once more, counted in one commit a tick.
    clocks.monotonicMs += RETRY_MS;
    await eventually(() => sent.length === 2 * ROWS, 5000);
    expect(reads.rows).toBe(2 * ROWS);
    await eventually(() => storedAttempts(s).every((a) => a === 2));
    expect(writes.commits).toBe(2 * Math.ceil(ROWS / SENDS_PER_TICK));
  });
});
