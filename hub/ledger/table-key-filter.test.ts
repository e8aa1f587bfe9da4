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

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-keyfilter-'));
    db = new Database(join(dir, 'keys.sqlite'));
    db.exec('CREATE TABLE ids (id TEXT NOT NULL UNIQUE)');
    // 5,000 rows (three chunks), then every third one deleted: the scan follows rowids with gaps.
    db.exec("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5000) INSERT INTO ids (id) SELECT 'key-' || i FROM s");
    db.exec('DELETE FROM ids WHERE rowid % 3 = 0');
    const after = db.prepare('SELECT rowid, id FROM ids WHERE rowid > ? ORDER BY rowid LIMIT ?').raw();
    read = (rowid, limit) => after.all(rowid, limit) as Array<[number, string]>;
  });

  afterEach(() => {
    if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers "maybe" for every key until the whole table is read, then "no" for keys it lacks', async () => {
    const filter = new TableKeyFilter(read, 10_000);
    expect(filter.complete).toBe(false);
    expect(filter.mightContain('never-stored')).toBe(true);
    expect(await filter.filled()).toBe(true);
    expect(filter.complete).toBe(true);
    for (let i = 1; i <= 5000; i++) {
      if (i % 3 !== 0 && !filter.mightContain(`key-${i}`)) throw new Error(`key-${i} missing`);
    }
    const absent = Array.from({ length: 2000 }, (_, i) => `other-${i}`).filter((k) => filter.mightContain(k));
    expect(absent.length).toBeLessThan(60);
  });

  it('keeps keys added while it fills, and rows written behind the scan come in too', async () => {
    const filter = new TableKeyFilter(read, 10_000);
    filter.add('added-before-the-scan');
    db.prepare('INSERT INTO ids (id) VALUES (?)').run('written-during-the-scan');
    expect(await filter.filled()).toBe(true);
    expect(filter.mightContain('added-before-the-scan')).toBe(true);
    expect(filter.mightContain('written-during-the-scan')).toBe(true);
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
