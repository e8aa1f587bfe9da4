import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TerminalStore } from './terminal-store.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tapsettle-terminal-store-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const id = (n: number): string => n.toString(16).padStart(32, '0');
const entry = (n: number, over: Partial<Parameters<TerminalStore['enqueue']>[0]> = {}) => ({
  requestId: id(n),
  envelope: JSON.stringify({ n, pad: 'x'.repeat(300) }),
  wallet: 'w1',
  amountMinor: 100,
  local: true,
  createdMs: 1000 + n,
  ...over,
});

describe('TerminalStore', () => {
  it('keeps the request id and bytes across a restart until the hub result arrives', () => {
    const dir = tempDir();
    const path = join(dir, 't.db');
    let s = TerminalStore.open(path);
    s.enqueue(entry(1));
    s.enqueue(entry(2, { local: false }));
    expect(() => s.enqueue(entry(1))).toThrow(); // an id is never reused for another request
    s.close();
    s = TerminalStore.open(path);
    expect(s.open().map((e) => e.requestId)).toEqual([id(1), id(2)]);
    expect(s.get(id(1))?.envelope).toBe(entry(1).envelope);
    expect(s.complete(id(1), '{"r":1}', { envelope: '{"receipt":1}' })).toBe(true);
    expect(s.complete(id(1), '{"r":2}')).toBe(false); // a duplicate reply changes nothing
    expect(s.get(id(1))).toMatchObject({ state: 'done', result: '{"r":1}' });
    expect(s.pendingReceipts()).toEqual([{ requestId: id(1), envelope: '{"receipt":1}', sent: false }]);
    s.markReceiptSent(id(1));
    expect(s.pendingReceipts()).toEqual([]);
    s.abandon(id(2));
    expect(s.open().map((e) => e.state)).toEqual(['abandoned']);
    s.close();
  });

  it('at a restart gives up the online requests still waiting, never a local decision', () => {
    const s = TerminalStore.open(join(tempDir(), 't.db'));
    s.enqueue(entry(1)); // local: decided here, keeps being forwarded
    s.enqueue(entry(2, { local: false }));
    s.enqueue(entry(3, { local: false }));
    s.complete(id(3), '{"r":3}');
    expect(s.abandonOnline()).toBe(1);
    expect(s.open().map((e) => [e.requestId, e.state])).toEqual([
      [id(1), 'pending'],
      [id(2), 'abandoned'],
    ]);
    expect(s.get(id(3))?.state).toBe('done');
    expect(s.abandonOnline()).toBe(0);
    s.close();
  });

  it('sums local acceptances per wallet (open, or since a statement) and per period', () => {
    const s = TerminalStore.open(join(tempDir(), 't.db'));
    s.enqueue(entry(1, { amountMinor: 100, createdMs: 1000 }));
    s.enqueue(entry(2, { amountMinor: 200, createdMs: 2000 }));
    s.enqueue(entry(3, { amountMinor: 400, createdMs: 3000, local: false }));
    s.enqueue(entry(4, { amountMinor: 800, createdMs: 4000, wallet: 'w2' }));
    s.complete(id(1), '{}');
    expect(s.walletLocalMinor('w1')).toBe(200);
    expect(s.walletLocalMinor('w1', 500)).toBe(300);
    expect(s.walletLocalMinor('w1', 1500)).toBe(200);
    expect(s.terminalPeriodMinor(1500)).toBe(1000);
    s.markTicketUsed('t1', 5);
    expect(s.ticketUsed('t1')).toBe(true);
    expect(s.ticketUsed('t2')).toBe(false);
    expect(s.nextPresenceSeq(10)).toBe(10);
    expect(s.nextPresenceSeq(5)).toBe(11);
    s.close();
  });

  it('power loss: a torn WAL tail loses at most the last commit, never part of one', () => {
    const dir = tempDir();
    const path = join(dir, 't.db');
    const s = TerminalStore.open(path);
    const N = 40;
    for (let n = 1; n <= N; n++) s.enqueue(entry(n));
    // The disk image at the moment of the power cut: the db file and its WAL, no shared memory.
    const imageDir = tempDir();
    copyFileSync(path, join(imageDir, 'base.db'));
    copyFileSync(`${path}-wal`, join(imageDir, 'base.db-wal'));
    s.close();
    const walBytes = statSync(join(imageDir, 'base.db-wal')).size;
    let previous = -1;
    for (const cut of [walBytes, walBytes - 1, walBytes - 4000, Math.floor(walBytes * 0.7), Math.floor(walBytes / 3), 33, 0]) {
      const d = tempDir();
      copyFileSync(join(imageDir, 'base.db'), join(d, 'c.db'));
      copyFileSync(join(imageDir, 'base.db-wal'), join(d, 'c.db-wal'));
      truncateSync(join(d, 'c.db-wal'), Math.max(0, cut));
      const c = TerminalStore.open(join(d, 'c.db'));
      const ids = c.open().map((e) => e.requestId);
      // A prefix of what was written, each record whole.
      expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => id(i + 1)));
      for (const e of c.open()) expect(JSON.parse(e.envelope).n).toBe(Number.parseInt(e.requestId, 16));
      if (cut === walBytes) expect(ids.length).toBe(N);
      if (cut === walBytes - 1) expect(ids.length).toBe(N - 1); // the torn last commit is dropped whole
      if (previous >= 0) expect(ids.length).toBeLessThanOrEqual(previous);
      previous = ids.length;
      c.close();
      expect(existsSync(join(d, 'c.db'))).toBe(true);
    }
  });
});
