import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeBatch, type EncodedBatch } from './commit-sql.ts';
import { emptyBatchWrite } from './store.ts';
import { tempLedger, type TempLedger } from './test-helpers.ts';
import { WriterThread } from './writer-thread.ts';

/** A batch that only inserts holds (their seq is the table's key, so a repeat fails in SQLite). */
function holds(...seqs: number[]): EncodedBatch {
  return encodeBatch({ ...emptyBatchWrite(), holdInserts: seqs.map((seq) => ({ seq, releaseAtMs: 1_000 + seq })) });
}

let ledger: TempLedger | undefined;
afterEach(() => ledger?.cleanup());

describe('WriterThread', () => {
  it('fails a batch that breaks a constraint with every batch grouped with it and every later one, and leaves none of their rows', async () => {
    ledger = tempLedger();
    await ledger.openStore().close(); // creates and migrates the file
    const writer = new WriterThread(ledger.file, { cacheKiB: 1024, walAutocheckpointPages: 1000, maxInFlight: 16 });
    const outcome = async (batch: EncodedBatch) => {
      const { committed } = await writer.commit(batch);
      return committed.then(
        () => 'committed',
        (err: Error) => err.message,
      );
    };
    // Handed over back to back: the writer may group any run of them into one transaction.
    const before = outcome(holds(1, 2));
    const bad = outcome(holds(3, 3));
    const after = [outcome(holds(4)), outcome(holds(5))];
    const results = await Promise.all([before, bad, ...after]);
    await writer.stop();

    expect(results[1]).toMatch(/UNIQUE/);
    for (const later of results.slice(2)) expect(later).not.toBe('committed');
    const db = new Database(ledger.file, { readonly: true });
    const stored = (db.prepare('SELECT seq FROM holds ORDER BY seq').all() as Array<{ seq: number }>).map((r) => r.seq);
    db.close();
    // The first batch is in the file only if it committed on its own, before the bad one.
    expect(stored).toEqual(results[0] === 'committed' ? [1, 2] : []);
  });
});
