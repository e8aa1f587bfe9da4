import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TableKeyFilter, type ReadKeys } from './table-key-filter.ts';

describe('TableKeyFilter', () => {
  let dir: string;
  let db: Database.Database;
  let read: ReadKeys;
  const key = (i: number): string => `key-${String(i).padStart(5, '0')}`;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-keyfilter-'));
    db = new Database(join(dir, 'keys.sqlite'));
    db.exec('CREATE TABLE ids (id TEXT PRIMARY KEY)');
    // 5,000 keys (three chunks), then every third one deleted.
    db.exec("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5000) INSERT INTO ids (id) SELECT printf('key-%05d', i) FROM s");
    db.exec("DELETE FROM ids WHERE CAST(substr(id, 5) AS INTEGER) % 3 = 0");
    const after = db.prepare('SELECT id FROM ids WHERE id > ? ORDER BY id LIMIT ?').pluck();
    read = (from, limit) => after.all(from, limit) as string[];
  });

  afterEach(() => {
    if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const falsePositives = (filter: TableKeyFilter): number => Array.from({ length: 2000 }, (_, i) => `other-${i}`).filter((k) => filter.mightContain(k)).length;

  it('answers "maybe" for every key until the whole table is read, then "no" for keys it lacks', async () => {
    const filter = new TableKeyFilter(read, 10_000);
    expect(filter.complete).toBe(false);
    expect(filter.mightContain('never-stored')).toBe(true);
    expect(await filter.filled()).toBe(true);
    expect(filter.complete).toBe(true);
    for (let i = 1; i <= 5000; i++) {
      if (i % 3 !== 0 && !filter.mightContain(key(i))) throw new Error(`${key(i)} missing`);
    }
    expect(falsePositives(filter)).toBeLessThan(60);
  });

  it('relies on the writer for keys written while it fills: added ones count, others need not', async () => {
    const filter = new TableKeyFilter(read, 10_000);
    filter.add('key-00000-added');
    db.prepare('INSERT INTO ids (id) VALUES (?)').run('key-00000-added');
    expect(await filter.filled()).toBe(true);
    expect(filter.mightContain('key-00000-added')).toBe(true);
  });

  it('refills from the table after pruning: pruned keys drop out, kept and newly added ones stay', async () => {
    const filter = new TableKeyFilter(read, 10_000);
    expect(await filter.filled()).toBe(true);
    db.exec("DELETE FROM ids WHERE id < 'key-04000'");
    filter.refill(2000);
    expect(filter.complete).toBe(true); // the old filter answers meanwhile
    filter.add('key-09999');
    expect(await filter.filled()).toBe(true);
    const prunedStillMaybe = Array.from({ length: 3999 }, (_, i) => key(i + 1)).filter((k) => filter.mightContain(k)).length;
    expect(prunedStillMaybe).toBeLessThan(100);
    for (const i of [4000, 4001, 4999]) expect(filter.mightContain(key(i))).toBe(true);
    expect(filter.mightContain('key-09999')).toBe(true);
    expect(filter.keys).toBeLessThan(1000);
  });

  it('stays "maybe" for everything when the scan fails or is stopped', async () => {
    const failing = new TableKeyFilter(() => {
      throw new Error('disk I/O error');
    }, 10);
    expect(await failing.filled()).toBe(false);
    expect(failing.mightContain('anything')).toBe(true);

    const stopped = new TableKeyFilter(read, 10_000);
    stopped.stop();
    expect(await stopped.filled()).toBe(false);
    expect(stopped.complete).toBe(false);
    expect(stopped.mightContain('anything')).toBe(true);
  });
});
