import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Body } from '../../protocol/index.ts';
import { decideOffline, DEFAULT_RISK_LIMITS } from '../policy/risk.ts';
import { MAX_KEPT_SLIPS, STORE_SCHEMA_VERSION, TerminalStore } from './terminal-store.ts';

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
    expect(s.pendingReceipts()).toEqual([{ requestId: id(1), envelope: '{"receipt":1}', acknowledged: false }]);
    s.markReceiptAcknowledged(id(1));
    expect(s.pendingReceipts()).toEqual([]);
    s.abandon(id(2));
    expect(s.open().map((e) => e.state)).toEqual(['abandoned']);
    s.close();
  });

  it("gives the re-send schedule the open requests' ids and send counts without envelopes, and only the due envelopes asked for", () => {
    const path = join(tempDir(), 't.db');
    let s = TerminalStore.open(path);
    s.enqueue(entry(2, { createdMs: 900 })); // queued later, dated earlier: oldest by its date
    s.enqueue(entry(1));
    s.enqueue(entry(3));
    s.complete(id(3), '{"r":3}');
    s.abandon(id(1)); // given up by the customer, still forwarded
    expect(s.openSends()).toEqual([
      { requestId: id(2), attempts: 0 },
      { requestId: id(1), attempts: 0 },
    ]);
    // Answered (3) or unknown (9) ids have nothing to send.
    expect(s.openEnvelopes([id(1), id(3), id(9)])).toEqual(new Map([[id(1), entry(1).envelope]]));
    expect(s.openEnvelopes([])).toEqual(new Map());
    // A tick's sends, in one transaction; durable across a restart.
    s.countAttempts(new Map([[id(1), 2], [id(2), 1]]));
    s.countAttempts(new Map([[id(1), 1]]));
    s.close();
    s = TerminalStore.open(path);
    expect(s.openSends()).toEqual([
      { requestId: id(2), attempts: 1 },
      { requestId: id(1), attempts: 3 },
    ]);
    expect(s.get(id(1))?.attempts).toBe(3);
    s.close();
    // A store closed first (a shutdown's last counts): nothing is written, nothing thrown.
    expect(() => s.countAttempts(new Map([[id(1), 1]]))).not.toThrow();
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
    let mono = 0;
    const s = TerminalStore.open(join(tempDir(), 't.db'), { monotonicMs: () => mono });
    s.enqueue(entry(1, { amountMinor: 100, createdMs: 1000 }));
    mono = 1000;
    s.enqueue(entry(2, { amountMinor: 200, createdMs: 2000 }));
    s.enqueue(entry(3, { amountMinor: 400, createdMs: 3000, local: false }));
    s.enqueue(entry(4, { amountMinor: 800, createdMs: 4000, wallet: 'w2' }));
    s.complete(id(1), '{}');
    expect(s.walletLocalMinor('w1')).toBe(200);
    expect(s.walletLocalMinor('w1', 500)).toBe(300);
    expect(s.walletLocalMinor('w1', 1500)).toBe(200);
    // Unsettled rows count whatever their date (a stale clock's rows look old); settled ones only
    // when after the statement's time.
    expect(s.walletLocalMinor('w1', 5000)).toBe(200);
    s.complete(id(2), '{}');
    expect(s.walletLocalMinor('w1', 1500)).toBe(200);
    expect(s.walletLocalMinor('w1', 5000)).toBe(0);
    mono = 1500;
    expect(s.terminalPeriodMinor(1000)).toBe(1000); // the last 1000 ms of running time
    expect(s.terminalPeriodMinor(2000)).toBe(1100);
    s.markTicketUsed('t1', 5);
    expect(s.ticketUsed('t1')).toBe(true);
    expect(s.ticketUsed('t2')).toBe(false);
    expect(s.nextPresenceSeq(10)).toBe(10);
    expect(s.nextPresenceSeq(5)).toBe(11);
    s.close();
  });

  it('the period budget follows running time: a wall-clock step (NTP on a Pi without RTC) frees nothing, a restart keeps it', () => {
    const path = join(tempDir(), 't.db');
    const DAY = 24 * 3600_000;
    const limits = { ...DEFAULT_RISK_LIMITS, terminalPeriodMinor: 4000, periodMs: DAY };
    let mono = 7; // a monotonic clock starts anywhere
    let s = TerminalStore.open(path, { monotonicMs: () => mono });
    // As the runtime wires it (terminal/runtime.ts context().usage).
    const usage = { walletLocalMinor: (w: string) => s.walletLocalMinor(w), terminalPeriodMinor: () => s.terminalPeriodMinor(limits.periodMs), ticketUsed: () => false };
    let n = 0;
    const sell = (wallNowMs: number): boolean => {
      const wallet = (++n).toString(16).padStart(64, '0');
      const license = { wallet, offlineLimitMinor: 2000, currency: 'EUR' } as Body<'wallet.license'>;
      const ok = decideOffline(license, 2000, 'EUR', usage, limits, wallNowMs).ok;
      if (ok) s.enqueue(entry(n, { wallet, amountMinor: 2000, createdMs: wallNowMs }));
      mono += 60_000;
      return ok;
    };
    const real = Date.UTC(2026, 5, 1, 12);
    const stale = real - 2 * DAY; // booted with a two-day-old clock, offline
    expect([0, 1, 2].map((i) => sell(stale + i * 60_000))).toEqual([true, true, false]);
    // NTP steps the clock two days forward: the rows look two days old, but only minutes passed.
    expect([0, 1, 2].map((i) => sell(real + i * 60_000))).toEqual([false, false, false]);
    expect(s.terminalPeriodMinor(DAY)).toBe(4000);
    // …and stepped back a week: nothing changes either.
    expect(sell(real - 7 * DAY)).toBe(false);
    // A restart (power cut after a save: the monotonic clock starts over) carries the running time on.
    s.saveUptime();
    s.close();
    mono = 3;
    s = TerminalStore.open(path, { monotonicMs: () => mono });
    expect(s.terminalPeriodMinor(DAY)).toBe(4000);
    // A full period of running time after the first sale it leaves the period; the second a minute later.
    const first = s.get(id(1))!.uptimeMs;
    mono += first + DAY - s.uptimeMs();
    expect(s.terminalPeriodMinor(DAY)).toBe(2000);
    mono += 60_000;
    expect(s.terminalPeriodMinor(DAY)).toBe(0);
    expect(sell(real + DAY)).toBe(true);
    s.close();
  });

  it('a store from before the running-time column is upgraded in place; its local rows stay in the period', () => {
    const path = join(tempDir(), 't.db');
    const old = new Database(path);
    old.exec(`CREATE TABLE outbox (request_id TEXT PRIMARY KEY, envelope TEXT NOT NULL, wallet TEXT, amount_minor INTEGER NOT NULL, local INTEGER NOT NULL,
      created_ms INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'abandoned', 'done')), result TEXT, attempts INTEGER NOT NULL DEFAULT 0)`);
    old.prepare("INSERT INTO outbox (request_id, envelope, wallet, amount_minor, local, created_ms, state) VALUES (?, '{}', 'w1', 700, 1, 1000, 'pending')").run(id(1));
    old.close();
    let mono = 0;
    const s = TerminalStore.open(path, { monotonicMs: () => mono });
    expect(s.get(id(1))).toMatchObject({ amountMinor: 700, uptimeMs: 0 });
    expect(s.terminalPeriodMinor(60_000)).toBe(700);
    mono = 30_000;
    s.enqueue(entry(2, { amountMinor: 100 }));
    mono = 60_000;
    expect(s.terminalPeriodMinor(60_000)).toBe(100);
    s.close();
  });

  it('versioned migrations: a store from before them (user_version 0) is brought up to date once, its data kept; a newer store opens as it is', () => {
    const path = join(tempDir(), 't.db');
    const old = new Database(path);
    old.exec('CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    old.prepare("INSERT INTO kv (key, value) VALUES ('k', 'v')").run();
    old.close();
    const s = TerminalStore.open(path);
    expect(s.db.pragma('user_version', { simple: true })).toBe(STORE_SCHEMA_VERSION);
    expect(STORE_SCHEMA_VERSION).toBeGreaterThanOrEqual(3);
    expect(s.slotFaults()).toEqual([]);
    expect(s.getKv('k')).toBe('v');
    expect(s.keptSlips()).toEqual([]);
    s.close();
    // Again: nothing left to run (a migration that ran twice would fail: CREATE TABLE slips exists).
    const again = TerminalStore.open(path);
    expect(again.db.pragma('user_version', { simple: true })).toBe(STORE_SCHEMA_VERSION);
    again.db.pragma(`user_version = ${STORE_SCHEMA_VERSION + 5}`); // written by a later version
    again.close();
    const rolledBack = TerminalStore.open(path);
    expect(rolledBack.getKv('k')).toBe('v');
    rolledBack.close();
  });

  it('keeps a slip until it is printed, across a restart; bounded, the oldest dropped first', () => {
    const path = join(tempDir(), 't.db');
    const s = TerminalStore.open(path);
    s.keepSlip(['POWER LOST — SALE REVERSED', 'ref 1', 'REFUND 2.50 EUR'], 1000);
    s.keepSlip(['second'], 2000);
    s.close();
    const again = TerminalStore.open(path);
    const kept = again.keptSlips();
    expect(kept.map((k) => k.lines)).toEqual([['POWER LOST — SALE REVERSED', 'ref 1', 'REFUND 2.50 EUR'], ['second']]);
    again.slipPrinted(kept[0]!.id);
    expect(again.keptSlips().map((k) => k.lines)).toEqual([['second']]);
    for (let n = 0; n < MAX_KEPT_SLIPS; n++) again.keepSlip([`slip ${n}`], 3000 + n);
    const bounded = again.keptSlips();
    expect(bounded).toHaveLength(MAX_KEPT_SLIPS);
    expect(bounded[0]!.lines).toEqual(['slip 0']);
    again.close();
  });

  it('counts failed vends per slot durably until an operator resets the slot', () => {
    const path = join(tempDir(), 't.db');
    const s = TerminalStore.open(path);
    expect(s.slotFailures(1)).toBe(0);
    expect(s.recordSlotFailure(1, 1000, 'no-drop', id(1))).toBe(1);
    expect(s.recordSlotFailure(1, 2000, 'DROP_SENSOR_BLOCKED', id(2))).toBe(2);
    expect(s.recordSlotFailure(4, 3000, 'no-drop', null)).toBe(1);
    s.close();
    const again = TerminalStore.open(path);
    expect(again.slotFaults()).toEqual([
      { slot: 1, failures: 2, firstMs: 1000, lastMs: 2000, lastReason: 'DROP_SENSOR_BLOCKED', lastRequestId: id(2) },
      { slot: 4, failures: 1, firstMs: 3000, lastMs: 3000, lastReason: 'no-drop', lastRequestId: null },
    ]);
    expect(again.resetSlot(1)).toBe(2);
    expect(again.resetSlot(1)).toBe(0);
    expect(again.slotFailures(1)).toBe(0);
    expect(again.slotFaults().map((f) => f.slot)).toEqual([4]);
    again.close();
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
  it('a vending request is an open vend from its queueing until its receipt, across a restart; "started" is durable', () => {
    const dir = tempDir();
    const path = join(dir, 't.db');
    let s = TerminalStore.open(path);
    s.enqueue(entry(1, { vend: true }));
    s.enqueue(entry(2, { vend: true }));
    s.enqueue(entry(3)); // not a vending request
    s.markVendStarted(id(2), 4, 5000);
    s.close();
    s = TerminalStore.open(path);
    expect(s.openVends()).toEqual([
      { requestId: id(1), slot: null, started: false },
      { requestId: id(2), slot: 4, started: true },
    ]);
    s.addReceipt(id(2), '{"receipt":2}'); // the receipt closes it
    s.clearVend(id(1)); // declined: nothing to close
    expect(s.openVends()).toEqual([]);
    s.close();
  });

  it('keeps a ticket held for its wallet across a restart until it is released', () => {
    const dir = tempDir();
    const path = join(dir, 't.db');
    let s = TerminalStore.open(path);
    s.holdTicket('t1', 'w1', '{"t":1}', 1000);
    s.holdTicket('t1', 'w1', '{"t":1}', 2000); // the same ticket twice is one
    s.holdTicket('t2', 'w2', '{"t":2}', 1000);
    s.close();
    s = TerminalStore.open(path);
    expect(s.heldTickets('w1')).toEqual(['{"t":1}']);
    s.releaseTicket('t1');
    expect(s.heldTickets('w1')).toEqual([]);
    expect(s.heldTickets('w2')).toEqual(['{"t":2}']);
    s.close();
  });

  it('keeps the sale of a held ticket (its refund if never collected); a store from before that column is upgraded', () => {
    const dir = tempDir();
    const path = join(dir, 't.db');
    const old = new Database(path);
    old.exec('CREATE TABLE held_tickets (ticket_id TEXT PRIMARY KEY, wallet TEXT NOT NULL, envelope TEXT NOT NULL, held_ms INTEGER NOT NULL)');
    old.prepare('INSERT INTO held_tickets VALUES (?, ?, ?, ?)').run('t0', 'w1', '{"t":0}', 500);
    old.close();
    const s = TerminalStore.open(path);
    s.holdTicket('t1', 'w1', '{"t":1}', 1000, id(7));
    expect(s.allHeldTickets(10)).toEqual([
      { ticketId: 't0', envelope: '{"t":0}', requestId: null },
      { ticketId: 't1', envelope: '{"t":1}', requestId: id(7) },
    ]);
    s.close();
  });

  it('prunes used ids under a prefix before a time, and nothing else', () => {
    const s = TerminalStore.open(join(tempDir(), 't.db'));
    s.markTicketUsed('admission:aa', 1000);
    s.markTicketUsed('admission:bb', 5000);
    s.markTicketUsed('aa'.repeat(16), 1000); // a ticket id, not an admission record
    expect(s.pruneUsed('admission:', 3000)).toBe(1);
    expect([s.ticketUsed('admission:aa'), s.ticketUsed('admission:bb'), s.ticketUsed('aa'.repeat(16))]).toEqual([false, true, true]);
    s.close();
  });

  it('prunes settled requests past both lines, with their acknowledged receipts; never open ones or unacknowledged receipts', () => {
    let mono = 0;
    const s = TerminalStore.open(join(tempDir(), 't.db'), { monotonicMs: () => mono });
    const at = (n: number, createdMs: number) => {
      s.enqueue(entry(n, { createdMs }));
      mono += 1000; // each a second of running time after the last
    };
    at(1, 1000); // settled, receipt acknowledged
    at(2, 1000); // settled, receipt not yet acknowledged by the hub
    at(3, 1000); // still waiting for the hub
    at(4, 1000); // abandoned by the customer, no hub result
    at(5, 1000); // settled, no receipt (a gate's fare)
    at(6, 9000); // settled, but recent by the wall clock
    at(7, 1000); // settled, but recent by running time
    for (const n of [1, 2, 5, 6, 7]) s.complete(id(n), `{"r":${n}}`);
    s.addReceipt(id(1), '{"receipt":1}');
    s.addReceipt(id(2), '{"receipt":2}');
    s.markReceiptAcknowledged(id(1));
    s.abandon(id(4));
    const beforeUptime = s.get(id(7))!.uptimeMs;
    expect(s.pruneSettled(5000, beforeUptime, 1)).toBe(1); // bounded: oldest first
    expect(s.get(id(1))).toBeUndefined();
    expect(s.getReceipt(id(1))).toBeUndefined();
    expect(s.pruneSettled(5000, beforeUptime, 100)).toBe(1);
    expect([1, 2, 3, 4, 5, 6, 7].filter((n) => s.get(id(n)) !== undefined)).toEqual([2, 3, 4, 6, 7]);
    expect(s.pendingReceipts().map((r) => r.requestId)).toEqual([id(2)]);
    // Once the hub acknowledges it, the request goes too.
    s.markReceiptAcknowledged(id(2));
    expect(s.pruneSettled(5000, beforeUptime, 100)).toBe(1);
    expect(s.getReceipt(id(2))).toBeUndefined();
    expect(s.openCount()).toBe(2);
    // A receipt of a request pruned before it was made (a paid exit's, hours later) is deliverable
    // at once, and goes once acknowledged: no request is left to prune it with.
    expect(s.receiptDeliverable(id(1))).toBe(true);
    expect(s.receiptDeliverable(id(3))).toBe(false);
    s.addReceipt(id(1), '{"receipt":"late"}');
    s.markReceiptAcknowledged(id(1));
    expect(s.getReceipt(id(1))).toBeUndefined();
    s.close();
  });

  it('atomically: a receipt and a kv write that fail together leave neither; that succeed, keep both', () => {
    const s = TerminalStore.open(join(tempDir(), 't.db'));
    expect(() =>
      s.atomically(() => {
        s.addReceipt('ab'.repeat(16), '{"receipt":1}');
        s.setKv('paid-exit.w', '{}');
        throw new Error('disk full');
      }),
    ).toThrow('disk full');
    expect([s.getReceipt('ab'.repeat(16)), s.getKv('paid-exit.w')]).toEqual([undefined, undefined]);
    expect(s.atomically(() => (s.addReceipt('ab'.repeat(16), '{"receipt":1}'), s.setKv('paid-exit.w', '{}'), 'done'))).toBe('done');
    expect(s.getReceipt('ab'.repeat(16))?.envelope).toBe('{"receipt":1}');
    expect(s.getKv('paid-exit.w')).toBe('{}');
  });

  it('lists (kvBefore) and prunes kv entries under a prefix by the time in their value, and nothing else', () => {
    const s = TerminalStore.open(join(tempDir(), 't.db'));
    s.setKv('incident.c', JSON.stringify({ timeMs: 2000 }));
    s.setKv('incident.a', JSON.stringify({ timeMs: 1000 }));
    s.setKv('incident.b', JSON.stringify({ timeMs: 5000 }));
    s.setKv('paid-exit.a', JSON.stringify({ timeMs: 1000 }));
    s.setKv('incidentals', JSON.stringify({ timeMs: 1000 }));
    expect(s.kvBefore('incident.', 3000)).toEqual([
      { key: 'incident.a', value: JSON.stringify({ timeMs: 1000 }) },
      { key: 'incident.c', value: JSON.stringify({ timeMs: 2000 }) },
    ]);
    expect(s.pruneKv('incident.', 3000)).toBe(2);
    expect(['incident.a', 'incident.b', 'paid-exit.a', 'incidentals'].map((k) => s.getKv(k) !== undefined)).toEqual([false, true, true, true]);
    s.close();
  });
});
