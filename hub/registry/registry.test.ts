import { mkdtempSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPair, issueTerminalCertificate, issueWalletLicense, toHex } from '../../protocol/index.ts';
import { KeyFileError, loadOrCreateEd25519Key } from './keys.ts';
import Database from 'better-sqlite3';
import { REGISTRY_MIGRATIONS } from './migrations.ts';
import { Registry, migrateRegistry } from './registry.ts';

let dir: string;
let file: string;
let reg: Registry;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tapsettle-registry-'));
  file = join(dir, 'registry.sqlite');
  reg = Registry.open(file);
});

afterEach(() => {
  reg.close();
  rmSync(dir, { recursive: true, force: true });
});

const hub = generateKeyPair();
const issuer = generateKeyPair();

describe('registry', () => {
  it('writes identities, revocations and the blocklist at synchronous=FULL, per-request state at NORMAL', async () => {
    // A temp trigger per table notes the connection's synchronous level at each write (2 = FULL).
    reg.db.exec('CREATE TEMP TABLE seen (tbl TEXT, level INTEGER)');
    const tables = ['terminals', 'wallets', 'blocklist', 'counters', 'challenges', 'results', 'ticket_uses', 'entry_records', 'receipts', 'tickets'];
    for (const t of tables) reg.db.exec(`CREATE TEMP TRIGGER seen_${t} AFTER INSERT ON main.${t} BEGIN INSERT INTO seen SELECT '${t}', synchronous FROM pragma_synchronous; END`);
    const t = generateKeyPair();
    const cert = issueTerminalCertificate(hub, { terminalId: 'g-1', kind: 'gate', merchantId: 'transit', publicKey: toHex(t.publicKey), notBefore: 0, notAfter: 1e13 });
    reg.insertTerminal(cert, 5);
    const wallet = toHex(generateKeyPair().publicKey);
    reg.insertWallet(issueWalletLicense(issuer, { wallet, notBefore: 0, notAfter: 1e13, ageOver: 0, groups: [], offlineLimitMinor: 0, currency: 'EUR' }), {}, 1);
    reg.blocklistAdd(wallet, 'lost', 2);
    reg.claimFreshness({ challenge: '01'.repeat(16), wallet, requestId: 'r1', counter: 1, nowMs: 3 });
    reg.putResult({ requestId: 'r1', terminalId: 'g-1', hash: 'h', op: 'purchase', wallet: null, engineId: null, status: 'approved', code: null, amountMinor: 1, currency: 'EUR', holdUntilMs: null, result: new Uint8Array([1]), timeMs: 3 });
    await reg.flush();
    reg.putTicket('t1', wallet, 'day-pass', 'r2', 4);
    reg.claimTicketUse('t1', 'r3', 'g-1', 'central', 5);
    reg.claimEntryRecord('e1', 'r4');
    reg.putReceipt('r1', 'dispensed', 'g-1', 6);
    const seen = Object.fromEntries((reg.db.prepare('SELECT tbl, level FROM seen').all() as Array<{ tbl: string; level: number }>).map((r) => [r.tbl, r.level]));
    expect(seen).toEqual({ terminals: 2, wallets: 2, blocklist: 2, counters: 1, challenges: 1, results: 1, tickets: 1, ticket_uses: 1, entry_records: 1, receipts: 1 });
    expect(reg.db.pragma('synchronous', { simple: true })).toBe(2);
  });

  it('keeps a 64 MiB page cache (the challenge index, and result ids of other terminals than ours, are keyed at random), or the size asked for', () => {
    expect(reg.db.pragma('cache_size', { simple: true })).toBe(-65_536);
    const small = Registry.open(join(dir, 'small.db'), { cacheKiB: 2_000 });
    try {
      expect(small.db.pragma('cache_size', { simple: true })).toBe(-2_000);
    } finally {
      small.close();
    }
  });

  it('records the ledger seq of its last committed claim; only a restore sets it back', async () => {
    const wallet = 'aa'.repeat(32);
    expect(reg.claimsLedgerSeq()).toBe(0);
    expect(reg.claimFreshness({ challenge: '01'.repeat(16), wallet, requestId: 'r1', nowMs: 50, ledgerSeq: 7 })).toBe('fresh');
    expect(reg.claimFreshness({ challenge: '02'.repeat(16), wallet, requestId: 'r2', nowMs: 40, ledgerSeq: 9 })).toBe('fresh');
    await reg.flush();
    expect(reg.claimsLedgerSeq()).toBe(9);
    expect(reg.claimFreshness({ challenge: '03'.repeat(16), wallet, requestId: 'r3', nowMs: 60, ledgerSeq: 8 })).toBe('fresh');
    await reg.flush();
    expect(reg.claimsLedgerSeq()).toBe(9);
    await reg.close();
    reg = Registry.open(file);
    expect(reg.claimsLedgerSeq()).toBe(9);
    reg.restoreClaims([], 5);
    expect(reg.claimsLedgerSeq()).toBe(5);
  });

  it('restores claims it lost: challenges and counters come back (for more wallets than it caches), claims it has change nothing', () => {
    reg.close();
    reg = Registry.open(file, { maxCachedWindows: 2 });
    const [a, b, c] = ['aa', 'bb', 'cc'].map((x) => x.repeat(32)) as [string, string, string];
    expect(reg.claimFreshness({ challenge: '01'.repeat(16), wallet: a, requestId: 'r1', counter: 1, nowMs: 50 })).toBe('fresh');
    const restored = [
      { challenge: '01'.repeat(16), wallet: a, requestId: 'r1', counter: 1, timeMs: 50 },
      { challenge: '03'.repeat(16), wallet: a, requestId: 'r3', counter: 7, timeMs: 60 },
      { challenge: '04'.repeat(16), wallet: b, requestId: 'r4', counter: 3, timeMs: 61 },
      { challenge: '05'.repeat(16), wallet: c, requestId: 'r5', counter: 4, timeMs: 62 },
      { challenge: '06'.repeat(16), wallet: c, requestId: 'r6', timeMs: 63 },
    ];
    expect(reg.restoreClaims(restored, 20)).toBe(4);
    expect(reg.restoreClaims(restored, 20)).toBe(0);
    expect(reg.claimsLedgerSeq()).toBe(20);
    reg.close();
    reg = Registry.open(file);
    expect(reg.claimFreshness({ challenge: '03'.repeat(16), wallet: a, requestId: 'r3', nowMs: 70 })).toBe('retry');
    expect(reg.claimFreshness({ challenge: '06'.repeat(16), wallet: c, requestId: 'r9', nowMs: 70 })).toBe('replay');
    // Each restored counter is taken, from the file; a lower one inside the window is still free.
    for (const [wallet, counter] of [[a, 7], [b, 3], [c, 4]] as const) {
      expect(reg.claimFreshness({ challenge: `${counter}${wallet.slice(0, 31)}`, wallet, requestId: 'rx', counter, nowMs: 70 })).toBe('replay');
    }
    expect(reg.claimFreshness({ challenge: '07'.repeat(16), wallet: a, requestId: 'r7', counter: 6, nowMs: 70 })).toBe('fresh');
  });

  it('restores an entry record its fare gave back as given back (a lost release too), never over a later claim; the challenge and counter stay claimed', () => {
    const wallet = 'aa'.repeat(32);
    const [e1, e2, e3] = ['e1', 'e2', 'e3'].map((x) => x.repeat(16)) as [string, string, string];
    // The file kept e1's claim by the declined fare r1 but lost its release (a power cut).
    expect(reg.claimEntryRecord(e1, 'r1')).toBe('fresh');
    const restored = [
      { challenge: '01'.repeat(16), wallet, requestId: 'r1', counter: 1, entryRecord: e1, entryRecordGivenBack: true, timeMs: 50 },
      // e2: declined by r2, then claimed and paid by r3 (seq order).
      { challenge: '02'.repeat(16), wallet, requestId: 'r2', counter: 2, entryRecord: e2, entryRecordGivenBack: true, timeMs: 51 },
      { challenge: '03'.repeat(16), wallet, requestId: 'r3', counter: 3, entryRecord: e2, timeMs: 52 },
      { challenge: '04'.repeat(16), wallet, requestId: 'r4', counter: 4, entryRecord: e3, entryRecordGivenBack: true, timeMs: 53 },
    ];
    expect(reg.restoreClaims(restored, 20)).toBe(4);
    expect(reg.restoreClaims(restored, 20)).toBe(0);
    expect(reg.claimEntryRecord(e2, 'r3')).toBe('retry');
    expect(reg.claimEntryRecord(e2, 'r9')).toBe('replay');
    expect(reg.claimEntryRecord(e1, 'r5')).toBe('fresh');
    expect(reg.claimEntryRecord(e3, 'r6')).toBe('fresh');
    for (const [challenge, counter] of [['01'.repeat(16), 1], ['04'.repeat(16), 4]] as const) {
      expect(reg.claimFreshness({ challenge, wallet, requestId: 'rx', nowMs: 70 })).toBe('replay');
      expect(reg.claimFreshness({ challenge: `${counter}${'f'.repeat(31)}`, wallet, requestId: 'ry', counter, nowMs: 70 })).toBe('replay');
    }
  });

  it('claims challenges and counters once; a retry of the same request is recognised; state survives reopen', () => {
    const wallet = 'aa'.repeat(32);
    const c = (challenge: string, requestId: string, counter?: number) =>
      reg.claimFreshness({ challenge, wallet, requestId, nowMs: 1, ...(counter !== undefined ? { counter } : {}) });
    expect(c('01'.repeat(16), 'r1', 5)).toBe('fresh');
    expect(c('01'.repeat(16), 'r1', 5)).toBe('retry');
    expect(c('01'.repeat(16), 'r2', 6)).toBe('replay');
    expect(c('02'.repeat(16), 'r3', 5)).toBe('replay'); // counter reused
    expect(c('03'.repeat(16), 'r4', 3)).toBe('fresh'); // out of order, inside the window
    reg.close();
    reg = Registry.open(file);
    expect(c('04'.repeat(16), 'r5', 3)).toBe('replay');
    expect(c('01'.repeat(16), 'r6')).toBe('replay');
    expect(c('05'.repeat(16), 'r7', 7)).toBe('fresh');
  });

  it('after a reopen knows every used challenge and stored result, while its negative caches fill and after', async () => {
    const wallet = 'ab'.repeat(32);
    const result = { terminalId: 't', hash: 'h', op: 'purchase', wallet: null, engineId: null, status: 'approved' as const, code: null, amountMinor: 1, currency: 'EUR', holdUntilMs: null, result: new Uint8Array([7]) };
    for (let i = 0; i < 3000; i++) {
      expect(reg.claimFreshness({ challenge: i.toString(16).padStart(32, '0'), wallet, requestId: `q${i}`, nowMs: 1 })).toBe('fresh');
      reg.putResult({ ...result, requestId: `q${i}`, timeMs: 1 });
    }
    await reg.close();
    reg = Registry.open(file);
    // Still filling (its first chunk runs on a later turn): every lookup reads the file.
    expect(reg.claimFreshness({ challenge: (2999).toString(16).padStart(32, '0'), wallet, requestId: 'other', nowMs: 2 })).toBe('replay');
    expect(reg.result('q2999')?.result).toEqual(new Uint8Array([7]));
    expect(await reg.negativeCachesFilled()).toBe(true);
    for (const i of [0, 1500, 2998]) {
      expect(reg.claimFreshness({ challenge: i.toString(16).padStart(32, '0'), wallet, requestId: 'other', nowMs: 2 })).toBe('replay');
      expect(reg.claimFreshness({ challenge: i.toString(16).padStart(32, '0'), wallet, requestId: `q${i}`, nowMs: 2 })).toBe('retry');
      expect(reg.result(`q${i}`)?.requestId).toBe(`q${i}`);
    }
    expect(reg.result('never')).toBeUndefined();
    expect(reg.claimFreshness({ challenge: 'ff'.repeat(16), wallet, requestId: 'new', nowMs: 2 })).toBe('fresh');
  });

  it('reads its negative caches afresh once pruning has left them holding more than twice the rows', async () => {
    await reg.close();
    reg = Registry.open(file, { negativeCacheHeadroom: 100 });
    const wallet = 'cd'.repeat(32);
    const result = { terminalId: 't', hash: 'h', op: 'purchase', wallet: null, engineId: null, status: 'approved' as const, code: null, amountMinor: 1, currency: 'EUR', holdUntilMs: null, result: new Uint8Array([1]) };
    for (let i = 0; i < 1000; i++) {
      reg.claimFreshness({ challenge: i.toString(16).padStart(32, '0'), wallet, requestId: `p${i}`, nowMs: i });
      reg.putResult({ ...result, requestId: `p${i}`, timeMs: i });
    }
    expect(await reg.negativeCachesFilled()).toBe(true);
    expect(reg.negativeCacheKeys()).toEqual({ results: 1000, challenges: 1000 });
    expect(reg.pruneResults(900, 10_000)).toBe(900);
    expect(reg.pruneChallenges(900, 10_000)).toBe(900);
    expect(await reg.negativeCachesFilled()).toBe(true);
    expect(reg.negativeCacheKeys()).toEqual({ results: 100, challenges: 100 });
    // What is left is still known; what was pruned is new again.
    expect(reg.result('p950')?.requestId).toBe('p950');
    expect(reg.result('p5')).toBeUndefined();
    expect(reg.claimFreshness({ challenge: (950).toString(16).padStart(32, '0'), wallet, requestId: 'x', nowMs: 2000 })).toBe('replay');
    expect(reg.claimFreshness({ challenge: (5).toString(16).padStart(32, '0'), wallet, requestId: 'x', nowMs: 2000 })).toBe('fresh');
  });

  it('prunes used challenges oldest first, at most `limit` per call; a pruned challenge counts as unused again', () => {
    const wallet = 'ee'.repeat(32);
    for (const [i, nowMs] of [[1, 10], [2, 20], [3, 30]] as const) {
      expect(reg.claimFreshness({ challenge: `0${i}`.repeat(16), wallet, requestId: `c${i}`, nowMs })).toBe('fresh');
    }
    expect(reg.pruneChallenges(25, 1)).toBe(1);
    expect(reg.pruneChallenges(25, 5)).toBe(1);
    expect(reg.pruneChallenges(25, 5)).toBe(0);
    expect(reg.claimFreshness({ challenge: '03'.repeat(16), wallet, requestId: 'c9', nowMs: 40 })).toBe('replay');
    expect(reg.claimFreshness({ challenge: '01'.repeat(16), wallet, requestId: 'c9', nowMs: 40 })).toBe('fresh');
  });

  it('prunes stored results oldest first, at most `limit` per call, queued ones included', () => {
    const base = { terminalId: 't', hash: 'h', op: 'purchase', wallet: null, engineId: null, status: 'approved' as const, code: null, amountMinor: 1, currency: 'EUR', holdUntilMs: null, result: new Uint8Array([1]) };
    for (const [id, timeMs] of [['r1', 10], ['r2', 20], ['r3', 30], ['r4', 40]] as const) reg.putResult({ ...base, requestId: id, timeMs });
    expect(reg.pruneResults(35, 2)).toBe(2);
    expect([reg.result('r1'), reg.result('r2')]).toEqual([undefined, undefined]);
    expect(reg.result('r3')).toBeDefined();
    expect(reg.pruneResults(35, 2)).toBe(1);
    expect(reg.result('r3')).toBeUndefined();
    expect(reg.result('r4')?.timeMs).toBe(40);
  });

  it('group-commits claims and results per turn; queued ones count at once and survive close()', async () => {
    const wallet = 'dd'.repeat(32);
    expect(reg.claimFreshness({ challenge: '0a'.repeat(16), wallet, requestId: 'q1', counter: 1, nowMs: 1 })).toBe('fresh');
    // Same turn, not yet committed: still seen.
    expect(reg.claimFreshness({ challenge: '0a'.repeat(16), wallet, requestId: 'q2', counter: 2, nowMs: 1 })).toBe('replay');
    const result = { requestId: 'q1', terminalId: 't', hash: 'h', op: 'purchase', wallet, engineId: null, status: 'approved' as const, code: null, amountMinor: 1, currency: 'EUR', holdUntilMs: null, result: new Uint8Array([1, 2]), timeMs: 1 };
    reg.putResult(result);
    expect(reg.result('q1')?.hash).toBe('h');
    await reg.flush();
    expect(reg.db.prepare('SELECT COUNT(*) AS n FROM challenges').get()).toEqual({ n: 1 });
    expect(reg.claimFreshness({ challenge: '0b'.repeat(16), wallet, requestId: 'q3', counter: 3, nowMs: 1 })).toBe('fresh');
    reg.putResult({ ...result, requestId: 'q3' });
    reg.close();
    reg = Registry.open(file);
    expect(reg.result('q3')?.result).toEqual(new Uint8Array([1, 2]));
    expect(reg.claimFreshness({ challenge: '0c'.repeat(16), wallet, requestId: 'q4', counter: 3, nowMs: 1 })).toBe('replay');
  });

  it('commits claims and results together within ~20 ms, not in their turn, or at once on flush()', async () => {
    const count = (table: string) => (reg.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
    const result = { requestId: 'r1', terminalId: 't', hash: 'h', op: 'purchase', wallet: null, engineId: null, status: 'approved' as const, code: null, amountMinor: 1, currency: 'EUR', holdUntilMs: null, result: new Uint8Array([1]), timeMs: 1 };
    reg.putResult(result);
    expect(reg.claimFreshness({ challenge: '0d'.repeat(16), wallet: 'ee'.repeat(32), requestId: 'r2', counter: 4, nowMs: 1 })).toBe('fresh');
    await new Promise((r) => setImmediate(r));
    expect([count('results'), count('challenges')]).toEqual([0, 0]);
    // Served from memory meanwhile.
    expect(reg.result('r1')?.hash).toBe('h');
    expect(reg.claimFreshness({ challenge: '0d'.repeat(16), wallet: 'ee'.repeat(32), requestId: 'r9', nowMs: 1 })).toBe('replay');
    expect(reg.claimFreshness({ challenge: '0e'.repeat(16), wallet: 'ee'.repeat(32), requestId: 'r9', counter: 4, nowMs: 1 })).toBe('replay');
    const deadline = Date.now() + 2000;
    while (count('results') === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect([count('results'), count('challenges'), count('counters')]).toEqual([1, 1, 1]);

    reg.putResult({ ...result, requestId: 'r4' });
    await reg.flush();
    expect(count('results')).toBe(2);
  });

  it('never evicts a counter window whose counter is still queued', async () => {
    reg.close();
    reg = Registry.open(file, { maxCachedWindows: 2 });
    const claim = (wallet: string, challenge: string, counter: number) => reg.claimFreshness({ challenge, wallet, requestId: challenge, counter, nowMs: 1 });
    const [a, b, c] = ['a1', 'b2', 'c3'].map((x) => x.repeat(32)) as [string, string, string];
    expect(claim(a, '01'.repeat(16), 5)).toBe('fresh');
    expect(claim(b, '02'.repeat(16), 5)).toBe('fresh');
    // A third wallet while a's and b's counters wait for their commit: neither is dropped.
    expect(claim(c, '03'.repeat(16), 5)).toBe('fresh');
    expect(claim(a, '04'.repeat(16), 5)).toBe('replay');
    await reg.flush();
    const states = reg.db.prepare('SELECT wallet, state FROM counters ORDER BY wallet').all() as Array<{ wallet: string; state: string }>;
    expect(states.map((r) => [r.wallet, (JSON.parse(r.state) as { highest: number }).highest])).toEqual([
      [a, 5],
      [b, 5],
      [c, 5],
    ]);
  });

  it('keeps claims queued through a failed commit, reports it, and refuses new claims until one succeeds', async () => {
    reg.close();
    const errors: unknown[] = [];
    reg = Registry.open(file, { onCommitError: (err) => errors.push(err) });
    const wallet = 'ee'.repeat(32);
    const claim = (challenge: string, requestId: string, counter: number) => reg.claimFreshness({ challenge, wallet, requestId, counter, nowMs: 1 });
    reg.db.exec("CREATE TRIGGER full BEFORE INSERT ON challenges BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    expect(claim('01'.repeat(16), 'r1', 1)).toBe('fresh');
    await expect(reg.flush()).rejects.toThrow('disk full');
    expect(errors.map((e) => (e as Error).message)).toEqual(['disk full']);
    // The relaxed level of that commit does not outlive it.
    expect(reg.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(() => claim('02'.repeat(16), 'r2', 2)).toThrow('disk full');
    reg.db.exec('DROP TRIGGER full');
    // The first claim still refuses its replays, by challenge and by counter.
    expect(claim('01'.repeat(16), 'r3', 3)).toBe('replay');
    expect(claim('03'.repeat(16), 'r3', 1)).toBe('replay');
    expect(claim('02'.repeat(16), 'r2', 2)).toBe('fresh');
    await reg.flush();
    expect(reg.db.prepare('SELECT challenge FROM challenges ORDER BY rowid').pluck().all()).toEqual(['01'.repeat(16), '02'.repeat(16)]);
  });

  it('versions the blocklist and keeps it across reopen', () => {
    const w = 'bb'.repeat(32);
    expect(reg.blocklistVersion()).toBe(0);
    expect(reg.blocklistAdd(w, 'lost', 10)).toBe(true);
    expect(reg.blocklistAdd(w, 'lost', 11)).toBe(false);
    expect(reg.blocklistVersion()).toBe(1);
    reg.close();
    reg = Registry.open(file);
    expect(reg.isBlocklisted(w)).toBe(true);
    expect(reg.blocklistRemove(w, 12)).toBe(true);
    expect(reg.blocklistVersion()).toBe(2);
    expect(reg.blocklist()).toEqual([]);
  });

  it('announces the blocklisted wallets whose license has not expired (and unknown ones), the newest first past the cap', () => {
    const licensed = (notAfter: number) => {
      const wallet = toHex(generateKeyPair().publicKey);
      reg.insertWallet(issueWalletLicense(issuer, { wallet, notBefore: 0, notAfter, ageOver: 0, groups: [], offlineLimitMinor: 0, currency: 'EUR' }), {}, 1);
      return wallet;
    };
    const expired = licensed(1_000);
    const [older, newer, newest] = [licensed(1e13), licensed(1e13), 'cc'.repeat(32)];
    reg.blocklistAdd(expired, 'lost', 10);
    reg.blocklistAdd(older, 'lost', 11);
    reg.blocklistAdd(newer, 'lost', 12);
    reg.blocklistAdd(newest, 'lost', 13); // never registered here: listed, nothing says it expired
    expect(reg.announcedBlocklist(500, 10)).toEqual({ wallets: [expired, older, newer, newest].sort(), leftOff: 0 });
    expect(reg.announcedBlocklist(2_000, 10)).toEqual({ wallets: [older, newer, newest].sort(), leftOff: 0 });
    expect(reg.announcedBlocklist(2_000, 2)).toEqual({ wallets: [newer, newest].sort(), leftOff: 1 });
    expect(reg.isBlocklisted(expired)).toBe(true); // the hub itself still refuses it
  });

  it('blocklists the wallets of overspent ledger rows it has not handled, never one it handled and an operator lifted', () => {
    const [handled, lost, lostAgain, listed] = ['a1', 'b2', 'c3', 'd4'].map((x) => x.repeat(32)) as [string, string, string, string];
    expect(reg.blocklistOverspent(handled, 3, 10)).toBe(true);
    expect(reg.blocklistOverspent(handled, 4, 11)).toBe(false);
    reg.blocklistAdd(listed, 'lost', 12);
    expect(reg.blocklistRemove(handled, 13)).toBe(true); // the operator lifts it
    reg.close();
    reg = Registry.open(file);
    expect(reg.overspendLedgerSeq()).toBe(0);
    const rows = [
      { seq: 3, walletId: handled },
      { seq: 4, walletId: handled },
      { seq: 5, walletId: lost },
      { seq: 6, walletId: listed },
      { seq: 7, walletId: lostAgain },
      { seq: 8, walletId: lost },
    ];
    const version = reg.blocklistVersion();
    expect(reg.restoreOverspendBlocks(rows, 9, true, 20)).toEqual([lost, lostAgain]);
    expect(reg.blocklist()).toEqual([
      { wallet: lost, reason: 'overspent offline' },
      { wallet: lostAgain, reason: 'overspent offline' },
      { wallet: listed, reason: 'lost' },
    ].sort((a, b) => (a.wallet < b.wallet ? -1 : 1)));
    expect(reg.blocklistVersion()).toBe(version + 2);
    expect(reg.overspendLedgerSeq()).toBe(9);
    reg.close();
    reg = Registry.open(file);
    expect(reg.overspendLedgerSeq()).toBe(9);
    expect(reg.isBlocklisted(lostAgain)).toBe(true);
  });

  it('forgets handled rows beyond the ledger’s end after the last page: a ledger restored from a backup gives those seqs out again', () => {
    const w = 'e5'.repeat(32);
    reg.blocklistOverspent(w, 20, 1);
    reg.blocklistRemove(w, 2);
    expect(reg.restoreOverspendBlocks([], 12, false, 3)).toEqual([]); // a page: seq 20 may still come
    expect(reg.restoreOverspendBlocks([], 9, true, 5)).toEqual([]); // the ledger ends at 8 now
    expect(reg.restoreOverspendBlocks([{ seq: 20, walletId: w }], 21, true, 6)).toEqual([w]);
  });

  it('counts the overspent rows of a registry upgraded in use as handled (-1), a new one scans from 0', () => {
    expect(reg.overspendLedgerSeq()).toBe(0);
    const upgraded = join(dir, 'upgraded.sqlite');
    const db = new Database(upgraded);
    migrateRegistry(db, REGISTRY_MIGRATIONS.filter((m) => m.version < 3)); // a registry from before 'overspend-blocks'
    db.prepare("INSERT INTO wallets (wallet, serial, license, registered_ms, revoked_ms) VALUES (?, 's', '{}', 1, NULL)").run('ab'.repeat(32));
    db.close();
    const old = Registry.open(upgraded);
    try {
      expect(old.overspendLedgerSeq()).toBe(-1);
    } finally {
      old.close();
    }
  });

  it('a registry with superseded licenses from before their expiry column opens, and reissues again', () => {
    const upgraded = join(dir, 'v6.sqlite');
    const db = new Database(upgraded);
    migrateRegistry(db, REGISTRY_MIGRATIONS.filter((m) => m.version <= 6));
    db.prepare('INSERT INTO superseded_licenses (serial, wallet, superseded_ms) VALUES (?, ?, ?)').run('s0', 'cd'.repeat(32), 5);
    db.close();
    const old = Registry.open(upgraded);
    try {
      expect(old.supersededAt('cd'.repeat(32), 's0')).toBe(5);
      const wallet = toHex(generateKeyPair().publicKey);
      const license = (notAfter: number) => issueWalletLicense(issuer, { wallet, notBefore: 0, notAfter, ageOver: 0, groups: [], offlineLimitMinor: 0, currency: 'EUR' });
      old.insertWallet(license(5_000), {}, 1);
      expect(old.replaceLicense(wallet, license(9_000), 10)).toBe(true);
      old.blocklistAdd(wallet, 'lost', 11);
      expect(old.announcedBlocklist(6_000, 10).wallets).toEqual([wallet]);
    } finally {
      old.close();
    }
  });

  it('a terminal enrolled at registry version 7 keeps the legacy broker password scheme (1) through the migration, until a reissue moves it to 2; new enrollments get 2', () => {
    const upgraded = join(dir, 'v7.sqlite');
    const db = new Database(upgraded);
    migrateRegistry(db, REGISTRY_MIGRATIONS.filter((m) => m.version <= 7)); // a registry written by the previous hub
    const keys = { old: generateKeyPair(), kept: generateKeyPair(), fresh: generateKeyPair() };
    const cert = (terminalId: string, k: { publicKey: Uint8Array }) =>
      issueTerminalCertificate(hub, { terminalId, kind: 'pos', merchantId: 'shop', publicKey: toHex(k.publicKey), notBefore: 0, notAfter: 1e13 });
    const insertV7 = db.prepare('INSERT INTO terminals (terminal_id, kind, merchant_id, public_key, serial, certificate, enrolled_ms, revoked_ms) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)');
    for (const [id, k] of [['pos-old', keys.old], ['pos-kept', keys.kept]] as const) {
      const c = cert(id, k);
      insertV7.run(id, 'pos', 'shop', toHex(k.publicKey), c.body.serial, JSON.stringify(c), 1);
    }
    db.close();
    let old = Registry.open(upgraded);
    try {
      expect(old.db.prepare('SELECT MAX(version) FROM schema_migrations').pluck().get()).toBe(REGISTRY_MIGRATIONS.at(-1)!.version);
      expect(old.terminal('pos-old')?.brokerPasswordScheme).toBe(1);
      expect(old.terminal('pos-kept')?.brokerPasswordScheme).toBe(1);
      expect(old.insertTerminal(cert('pos-new', keys.fresh), 2).brokerPasswordScheme).toBe(2);
      const reissued = cert('pos-old', keys.old);
      expect(old.replaceCertificate(reissued)).toMatchObject({ serial: reissued.body.serial, brokerPasswordScheme: 2 });
      expect(old.terminal('pos-old')?.brokerPasswordScheme).toBe(2);
      expect(old.revokeTerminal('pos-kept', 3)).toBe(true);
      expect(old.terminal('pos-kept')?.brokerPasswordScheme).toBe(1); // a revocation moves nothing
      // Another key is not a reissue: refused, and the scheme stays.
      expect(old.replaceCertificate(cert('pos-new', keys.old))).toBeUndefined();
      // Only 1 and 2 are schemes.
      expect(() => old.db.prepare("UPDATE terminals SET broker_password_scheme = 3 WHERE terminal_id = 'pos-new'").run()).toThrow(/CHECK constraint/);
    } finally {
      old.close();
    }
    old = Registry.open(upgraded); // as written to the file
    try {
      expect(Object.fromEntries(old.terminals().map((t) => [t.terminalId, t.brokerPasswordScheme]))).toEqual({ 'pos-old': 2, 'pos-kept': 1, 'pos-new': 2 });
    } finally {
      old.close();
    }
  });

  it('durable(): commits the queued claims at once and fsyncs, on a file or in memory', async () => {
    expect(reg.claimFreshness({ challenge: 'c1'.repeat(16), wallet: 'w1'.repeat(32), requestId: 'r1'.repeat(16), nowMs: 1 })).toBe('fresh');
    const other = new Database(file, { readonly: true });
    try {
      const seen = () => other.prepare('SELECT 1 FROM challenges WHERE challenge = ?').get('c1'.repeat(16)) !== undefined;
      expect(seen()).toBe(false); // queued for the deferred group commit
      await reg.durable();
      expect(seen()).toBe(true);
    } finally {
      other.close();
    }
    const memory = Registry.open(':memory:');
    try {
      memory.claimFreshness({ challenge: 'c2'.repeat(16), wallet: 'w1'.repeat(32), requestId: 'r2'.repeat(16), nowMs: 1 });
      await expect(memory.durable()).resolves.toBeUndefined();
    } finally {
      await memory.close();
    }
  });

  it('durable(): once a WAL sync has failed, refuses until reopened, and reports it', async () => {
    const reported: unknown[] = [];
    reg.close();
    reg = Registry.open(file, { onCommitError: (err) => reported.push(err) });
    reg.blocklistAdd('ab'.repeat(32), 'lost', 1); // a write: the WAL exists
    rmSync(`${file}-wal`); // the syncer cannot open it (SQLite keeps its own descriptor)
    await expect(reg.durable()).rejects.toMatchObject({ code: 'ENOENT' });
    writeFileSync(`${file}-wal`, ''); // openable again: a later sync could report success
    await expect(reg.durable()).rejects.toMatchObject({ code: 'ENOENT' });
    expect(reported).toHaveLength(1);
  });

  it('enrolls and revokes terminals (TerminalDirectory)', () => {
    const t = generateKeyPair();
    const cert = issueTerminalCertificate(hub, { terminalId: 'g-1', kind: 'gate', merchantId: 'transit', publicKey: toHex(t.publicKey), notBefore: 0, notAfter: 1e13 });
    reg.insertTerminal(cert, 5);
    expect(reg.lookupTerminal('g-1')).toEqual({ publicKey: toHex(t.publicKey), kind: 'gate', merchantId: 'transit', revoked: false });
    expect(reg.lookupTerminal('nope')).toBeUndefined();
    expect(reg.listTerminals()).toEqual([{ terminalId: 'g-1', publicKey: toHex(t.publicKey), kind: 'gate', merchantId: 'transit', revoked: false }]);
    expect(reg.revokeTerminal('g-1', 6)).toBe(true);
    expect(reg.revokeTerminal('g-1', 7)).toBe(false);
    reg.close();
    reg = Registry.open(file);
    expect(reg.lookupTerminal('g-1')?.revoked).toBe(true);
    expect(reg.meta('keys_version')).toBe(2);
  });

  it('keeps identities apart and logs every disclosure (seed 001)', () => {
    const w = generateKeyPair();
    const license = issueWalletLicense(issuer, {
      wallet: toHex(w.publicKey),
      notBefore: 0,
      notAfter: 1e13,
      ageOver: 18,
      groups: [],
      offlineLimitMinor: 0,
      currency: 'EUR',
    });
    reg.insertWallet(license, { name: 'Bob' }, 1);
    expect(reg.wallet(toHex(w.publicKey))?.license).toEqual(license);
    expect(JSON.stringify(reg.wallet(toHex(w.publicKey)))).not.toContain('Bob');
    expect(reg.disclosureLog()).toEqual([]);
    expect(reg.revealIdentity(toHex(w.publicKey), 'auditor', 'case 1', 99)).toEqual({ name: 'Bob' });
    expect(reg.disclosureLog()).toEqual([{ id: 1, wallet: toHex(w.publicKey), operator: 'auditor', reason: 'case 1', timeMs: 99 }]);
    expect(reg.revealIdentity('cc'.repeat(32), 'auditor', 'case 2', 100)).toBeUndefined();
    expect(reg.disclosureLog()).toHaveLength(1);
  });

  it('checkpoints the WAL from a worker when asked (the event loop only appends)', async () => {
    reg.close();
    reg = Registry.open(file, { backgroundCheckpointMs: 20 });
    expect(reg.db.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000);
    const before = statSync(file).size;
    for (let i = 0; i < 300; i++) {
      reg.putResult({
        requestId: i.toString(16).padStart(32, '0'), terminalId: 't', hash: 'h', op: 'purchase', wallet: null, engineId: null,
        status: 'approved', code: null, amountMinor: 1, currency: 'EUR', holdUntilMs: null, result: new Uint8Array(1500).fill(i % 256), timeMs: i,
      });
    }
    await reg.flush();
    // Far below the 10,000-page backstop: only the worker copies pages into the database file.
    const deadline = Date.now() + 5000;
    while (statSync(file).size === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(statSync(file).size).toBeGreaterThan(before);
    expect(reg.result((299).toString(16).padStart(32, '0'))?.result[0]).toBe(299 % 256);
  });

  it('serves wallets from memory; a revocation is seen at once and survives reopen', () => {
    const w = generateKeyPair();
    const id = toHex(w.publicKey);
    const license = issueWalletLicense(issuer, { wallet: id, notBefore: 0, notAfter: 1e13, ageOver: 0, groups: [], offlineLimitMinor: 0, currency: 'EUR' });
    expect(reg.wallet(id)).toBeUndefined(); // an unknown wallet is not remembered as unknown
    reg.insertWallet(license, {}, 1);
    expect(reg.wallet(id)?.revokedMs).toBeNull();
    expect(reg.wallet(id)).toBe(reg.wallet(id)); // the cached record
    expect(reg.revokeWallet(id, 42)).toBe(true);
    expect(reg.wallet(id)?.revokedMs).toBe(42);
    expect(reg.revokeWallet(id, 43)).toBe(false);
    reg.close();
    reg = Registry.open(file);
    expect(reg.wallet(id)?.revokedMs).toBe(42);
  });

  it('first ticket use wins; entry records pay once', () => {
    expect(reg.claimTicketUse('t1', 'r1', 'g-1', 'a', 1)).toBe('fresh');
    expect(reg.claimTicketUse('t1', 'r1', 'g-1', 'a', 1)).toBe('retry');
    expect(reg.claimTicketUse('t1', 'r2', 'g-2', 'b', 0)).toBe('replay');
    expect(reg.claimEntryRecord('e1', 'r1')).toBe('fresh');
    expect(reg.claimEntryRecord('e1', 'r9')).toBe('replay');
  });

  it('a blocklisted wallet stays announced while any license of it (in force or replaced) is unexpired; a reissue of a listed wallet is a new version', () => {
    const wallet = toHex(generateKeyPair().publicKey);
    const license = (notAfter: number) => issueWalletLicense(issuer, { wallet, notBefore: 0, notAfter, ageOver: 0, groups: [], offlineLimitMinor: 0, currency: 'EUR' });
    reg.insertWallet(license(5_000), {}, 1);
    reg.blocklistAdd(wallet, 'overspent', 10);
    const v = reg.blocklistVersion();
    // Reissued with a shorter life: the replaced one (until 5,000) is still honoured offline.
    expect(reg.replaceLicense(wallet, license(3_000), 20)).toBe(true);
    expect(reg.isSupersededLicense(wallet, reg.wallet(wallet)!.serial)).toBe(false);
    expect(reg.blocklistVersion()).toBe(v + 1);
    expect(reg.announcedBlocklist(4_000, 10).wallets).toEqual([wallet]);
    expect(reg.announcedBlocklist(6_000, 10).wallets).toEqual([]);
    // Both expired, then renewed: listed again under a newer version than the one that left it off.
    expect(reg.replaceLicense(wallet, license(9_000), 30)).toBe(true);
    expect(reg.blocklistVersion()).toBe(v + 2);
    expect(reg.announcedBlocklist(6_000, 10).wallets).toEqual([wallet]);
  });

  it('a voided ticket is a new deny-list version (listed while recent); given back, another; a used one cannot be voided', () => {
    expect(reg.voidTicket('t1', 'refund-1', 100)).toBe('fresh');
    expect(reg.blocklistVersion()).toBe(1);
    expect(reg.voidTicket('t1', 'refund-1', 101)).toBe('retry');
    expect(reg.blocklistVersion()).toBe(1);
    reg.claimTicketUse('t2', 'use-1', 'g-1', 'north', 102);
    expect(reg.voidTicket('t2', 'refund-2', 103)).toBe('replay');
    expect(reg.voidedTickets(0, 10)).toEqual(['t1']);
    expect(reg.voidedTickets(100, 10)).toEqual([]); // voided before the horizon asked for
    reg.unvoidTicket('t1', 'refund-1', 104);
    expect(reg.blocklistVersion()).toBe(2);
    expect(reg.voidedTickets(0, 10)).toEqual([]);
    expect(reg.claimTicketUse('t1', 'use-2', 'g-1', 'north', 105)).toBe('fresh');
  });

  it('versions catalogs per merchant and fare tables', () => {
    const art = [{ sku: 'x', name: 'X', priceMinor: 1, currency: 'EUR' }];
    expect(reg.putCatalog('m1', art, 1).version).toBe(1);
    expect(reg.putCatalog('m1', art, 2).version).toBe(2);
    expect(reg.putCatalog('m2', art, 3).version).toBe(1);
    expect(reg.catalogs().map((c) => [c.merchantId, c.version])).toEqual([
      ['m1', 2],
      ['m2', 1],
    ]);
  });

  it('answers the catalog version in force at a time, and drops versions replaced before keepSinceMs', () => {
    const art = (priceMinor: number) => [{ sku: 'x', name: 'X', priceMinor, currency: 'EUR' }];
    const price = (t: number) => reg.catalogAt('h1', t)?.articles[0]?.priceMinor;
    expect(reg.catalogAt('h1', 100)).toBeUndefined();
    reg.putCatalog('h1', art(10), 100);
    reg.putCatalog('h1', art(20), 200);
    reg.putCatalog('h1', art(30), 300);
    expect([price(99), price(100), price(199), price(200), price(299), price(300), price(10_000)]).toEqual([10, 10, 10, 20, 20, 30, 30]);
    expect(reg.catalogAt('h1', 250)?.version).toBe(2);
    // Versions 1 and 2 were replaced by 300: before that, the oldest kept (3) stands in.
    reg.putCatalog('h1', art(40), 400, 350);
    const versions = () => (reg.db.prepare("SELECT version FROM catalogs WHERE merchant_id = 'h1' ORDER BY version").pluck().all() as number[]);
    expect(versions()).toEqual([3, 4]);
    expect([price(150), price(399), price(400)]).toEqual([30, 30, 40]);
    reg.putCatalog('h1', art(50), 500, 10);
    expect(versions()).toEqual([3, 4, 5]);
  });
});

describe('key files', () => {
  it('creates a key once with mode 0600, reloads the same key, tightens a loosened mode', () => {
    const a = loadOrCreateEd25519Key(dir, 'hub-signing');
    expect(statSync(join(dir, 'hub-signing.key')).mode & 0o777).toBe(0o600);
    chmodSync(join(dir, 'hub-signing.key'), 0o644);
    const b = loadOrCreateEd25519Key(dir, 'hub-signing');
    expect(toHex(b.publicKey)).toBe(toHex(a.publicKey));
    expect(statSync(join(dir, 'hub-signing.key')).mode & 0o777).toBe(0o600);
    writeFileSync(join(dir, 'broken.key'), 'not hex');
    expect(() => loadOrCreateEd25519Key(dir, 'broken')).toThrow(KeyFileError);
    try {
      loadOrCreateEd25519Key(dir, 'broken');
    } catch (err) {
      expect((err as Error).message).not.toContain('not hex');
    }
  });
});
