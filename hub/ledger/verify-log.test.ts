// verifyLedger checks the settlement log against the journal: each test tampers one column (or
// row) of a consistent ledger directly in SQLite and expects a typed finding naming it. The
// journal's own checks (balances = postings, conservation) pass on every one of these files.
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_ENTRY_FIELDS, LOG_ROW_REASONS, REFUND_LINK_REASONS, verifyLedger, type Discrepancy } from './verify.ts';
import { SqliteLedgerStore } from './sqlite-store.ts';
import { Engine } from './engine.ts';
import { rid, tempLedger, walletId, type TempLedger } from './test-helpers.ts';
import type { Outcome } from './types.ts';
import { readFileSync } from 'node:fs';

const W1 = walletId(1);
const W2 = walletId(2);
const W3 = walletId(3);

let ledger: TempLedger;
/** Seqs of the template's rows. */
const seq = { P: 0, R: 0, Q: 0, H: 0, O: 0 };
/** Request ids of the refunded purchase P and the purchase Q. */
const req = { P: '', Q: '' };
let copies = 0;

function seqOf(o: Outcome): number {
  if (o.status !== 'approved') throw new Error(`expected approved, got ${JSON.stringify(o)}`);
  return o.seq;
}

beforeAll(async () => {
  ledger = tempLedger();
  const e = await ledger.openEngine();
  for (const w of [W1, W2, W3]) await e.openWallet(w, 'EUR');
  await e.openMerchant('shop', { currency: 'EUR' });
  await e.openMerchant('cafe', { currency: 'EUR' });
  const buy = (walletIdHex: string, amountMinor: number, extra: object = {}): Promise<Outcome> =>
    e.submit({ kind: 'purchase', requestId: rid(), walletId: walletIdHex, merchantId: 'shop', amountMinor, currency: 'EUR', ...extra });
  // The reviewer's ledger: a purchase of 300, refunded once; the shop has 5000 more.
  await e.submit({ kind: 'topup', requestId: rid(), walletId: W1, amountMinor: 1000, currency: 'EUR', source: 'cash' });
  const p = (req.P = rid());
  seq.P = seqOf(await e.submit({ kind: 'purchase', requestId: p, walletId: W1, merchantId: 'shop', amountMinor: 300, currency: 'EUR' }));
  await e.submit({ kind: 'topup', requestId: rid(), walletId: W2, amountMinor: 5000, currency: 'EUR', source: 'card' });
  await buy(W2, 5000);
  await e.settled();
  seq.R = seqOf(await e.submit({ kind: 'refund', requestId: rid(), originalRequestId: p }));
  // More rows to tamper: a purchase with a fee, one in a cancellation window, an overdraft.
  req.Q = rid();
  seq.Q = seqOf(await buy(W1, 100, { feeMinor: 10, requestId: req.Q }));
  seq.H = seqOf(await buy(W1, 50, { holdUntilMs: Date.now() + 3_600_000 }));
  seq.O = seqOf(await e.submit({ kind: 'offline_purchase', requestId: rid(), walletId: W3, merchantId: 'shop', amountMinor: 20, currency: 'EUR' }));
  await e.close();
});

afterAll(() => ledger.cleanup());

/** A copy of the template ledger with `sql` applied. */
function tamperedFile(sql: (num: (id: string) => number) => string): string {
  const file = join(ledger.dir, `copy-${++copies}.db`);
  copyFileSync(ledger.file, file);
  const store = SqliteLedgerStore.open(file, { writerThread: false, backgroundCheckpointMs: 0 });
  try {
    const num = (id: string): number => store.db.prepare('SELECT num FROM account_ids WHERE id = ?').pluck().get(id) as number;
    store.db.exec(sql(num));
  } finally {
    store.db.close();
  }
  return file;
}

/** A copy of the template ledger with `sql` applied, verified. */
async function tampered(sql: (num: (id: string) => number) => string): Promise<{ ok: boolean; discrepancies: Discrepancy[] }> {
  const store = SqliteLedgerStore.open(tamperedFile(sql), { writerThread: false, backgroundCheckpointMs: 0 });
  try {
    return await verifyLedger(store);
  } finally {
    await store.close();
  }
}

describe('verifyLedger: the settlement log against the journal', () => {
  it('passes the untampered template', async () => {
    const r = await tampered(() => 'SELECT 1');
    expect(r.discrepancies).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it("reviewer's case: a refunded purchase's row unmarked and its amount raised ×10", async () => {
    const r = await tampered(() => `UPDATE settlement_log SET refunded_by_seq = NULL, amount_minor = 3000 WHERE seq = ${seq.P}`);
    expect(r.ok).toBe(false);
    expect(r.discrepancies).toContainEqual({ kind: 'log_entry_mismatch', seq: seq.P, entryId: expect.any(Number), field: 'payer_leg', logMinor: -3000, journalMinor: -300 });
    expect(r.discrepancies).toContainEqual({ kind: 'refund_link', seq: seq.R, originalSeq: seq.P, refundSeq: seq.R, reason: 'original_not_marked' });
    expect(r.discrepancies).toContainEqual({ kind: 'log_balance_mismatch', accountId: W1, logMinor: 850 - 2700, journalMinor: 850 });
  });

  // One column (or row) each: [what, SQL, a finding the report must contain].
  const cases: Array<[string, (num: (id: string) => number) => string, () => Partial<Discrepancy>]> = [
    ['amount_minor of a purchase', () => `UPDATE settlement_log SET amount_minor = 1000 WHERE seq = ${seq.Q}`, () => ({ kind: 'log_entry_mismatch', seq: seq.Q, field: 'payer_leg', logMinor: -1000, journalMinor: -100 })],
    ['payer_num of a purchase', (num) => `UPDATE settlement_log SET payer_num = ${num(W2)} WHERE seq = ${seq.Q}`, () => ({ kind: 'log_entry_mismatch', seq: seq.Q, field: 'payer_leg', logMinor: -100, journalMinor: null })],
    ['payee_num of a deposited purchase', (num) => `UPDATE settlement_log SET payee_num = ${num('cafe')} WHERE seq = ${seq.Q}`, () => ({ kind: 'log_balance_mismatch', accountId: 'cafe', logMinor: 90, journalMinor: 0 })],
    ['fee_minor of a deposited purchase', () => `UPDATE settlement_log SET fee_minor = 0 WHERE seq = ${seq.Q}`, () => ({ kind: 'log_balance_mismatch', accountId: '@fees:EUR', logMinor: 0, journalMinor: 10 })],
    ['currency of a purchase', () => `UPDATE settlement_log SET currency = 'USD' WHERE seq = ${seq.Q}`, () => ({ kind: 'log_entry_mismatch', seq: seq.Q, field: 'currency' })],
    ['entry_id of a purchase (another row’s entry)', () => `UPDATE settlement_log SET entry_id = (SELECT entry_id FROM settlement_log WHERE seq = ${seq.H}) WHERE seq = ${seq.Q}`, () => ({ kind: 'log_entry_mismatch', seq: seq.Q, field: 'seq' })],
    ['entry_id of a purchase (no such entry)', () => `UPDATE settlement_log SET entry_id = 999999 WHERE seq = ${seq.Q}`, () => ({ kind: 'log_entry_mismatch', seq: seq.Q, entryId: 999999, field: 'missing' })],
    ['state of a deposited purchase (back to withdrawn)', () => `UPDATE settlement_log SET state = 1 WHERE seq = ${seq.Q}`, () => ({ kind: 'log_balance_mismatch', accountId: '@in_transit:EUR', logMinor: 100, journalMinor: 0 })],
    ['state of a purchase (logged again, below the recovery point)', () => `UPDATE settlement_log SET state = 0, entry_id = NULL WHERE seq = ${seq.Q}`, () => ({ kind: 'log_row_invalid', seq: seq.Q, reason: 'behind_recovery' })],
    ['code of an approved purchase', () => `UPDATE settlement_log SET code = 'insufficient_funds' WHERE seq = ${seq.Q}`, () => ({ kind: 'log_row_invalid', seq: seq.Q, reason: 'approved_without_entry' })],
    ['overspent of a covered purchase', () => `UPDATE settlement_log SET overspent = 1 WHERE seq = ${seq.Q}`, () => ({ kind: 'log_row_invalid', seq: seq.Q, reason: 'overspent' })],
    ['refunded_by_seq of a refunded purchase (cleared)', () => `UPDATE settlement_log SET refunded_by_seq = NULL WHERE seq = ${seq.P}`, () => ({ kind: 'refund_link', seq: seq.R, originalSeq: seq.P, refundSeq: seq.R, reason: 'original_not_marked' })],
    ['refunded_by_seq of a purchase never refunded (set)', () => `UPDATE settlement_log SET refunded_by_seq = ${seq.R} WHERE seq = ${seq.Q}`, () => ({ kind: 'refund_link', seq: seq.Q, originalSeq: seq.Q, refundSeq: seq.R, reason: 'refund_missing' })],
    ['ref_seq of a refund (another purchase)', () => `UPDATE settlement_log SET ref_seq = ${seq.Q} WHERE seq = ${seq.R}`, () => ({ kind: 'refund_link', seq: seq.R, originalSeq: seq.Q, refundSeq: seq.R, reason: 'original_not_marked' })],
    ['amount_minor of a refund', () => `UPDATE settlement_log SET amount_minor = 3000 WHERE seq = ${seq.R}`, () => ({ kind: 'refund_link', seq: seq.R, originalSeq: seq.P, refundSeq: seq.R, reason: 'amount' })],
    ['payee_num of a refund', (num) => `UPDATE settlement_log SET payee_num = ${num(W2)} WHERE seq = ${seq.R}`, () => ({ kind: 'refund_link', seq: seq.R, reason: 'accounts' })],
    [
      'a second approved refund row of the same purchase',
      () => `INSERT INTO settlement_log SELECT (SELECT MAX(seq) + 1 FROM settlement_log), randomblob(16), hash, kind, payer_num, payee_num, amount_minor, fee_minor, currency, hold_until_ms,
        ref_seq, memo, state, code, entry_id, balance_after_minor, at_ms, overspent, refunded_by_seq FROM settlement_log WHERE seq = ${seq.R}`,
      () => ({ kind: 'refund_link', originalSeq: seq.P, reason: 'original_not_marked' }),
    ],
    ['the holds row of a held purchase', () => `DELETE FROM holds WHERE seq = ${seq.H}`, () => ({ kind: 'log_row_invalid', seq: seq.H, reason: 'hold_row' })],
    ['flags of a wallet that never overdrew (set)', (num) => `UPDATE accounts SET flags = 1 WHERE num = ${num(W1)}`, () => ({ kind: 'flag_mismatch', accountId: W1, flagged: true, overspentSeq: null })],
    ['flags of an overdrawn wallet (cleared)', (num) => `UPDATE accounts SET flags = 0 WHERE num = ${num(W3)}`, () => ({ kind: 'flag_mismatch', accountId: W3, flagged: false, overspentSeq: seq.O })],
  ];

  it.each(cases)('finds a tampered %s', async (_what, sql, finding) => {
    const r = await tampered(sql);
    expect(r.ok).toBe(false);
    expect(r.discrepancies).toContainEqual(expect.objectContaining(finding()));
  });

  it('documents every finding code in the README', () => {
    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    const kinds = ['log_row_invalid', 'log_entry_mismatch', 'refund_link', 'log_balance_mismatch', 'flag_mismatch'];
    for (const code of [...kinds, ...Object.keys(LOG_ROW_REASONS), ...Object.keys(LOG_ENTRY_FIELDS), ...Object.keys(REFUND_LINK_REASONS)]) expect(readme).toContain(`\`${code}\``);
  });
});

describe('a refund of a tampered original', () => {
  async function refundOn(file: string, originalRequestId: string): Promise<{ outcome: Outcome; w1: number | undefined; w2: number | undefined }> {
    const e = await Engine.open(SqliteLedgerStore.open(file, { writerThread: false, backgroundCheckpointMs: 0 }));
    try {
      const outcome = await e.submit({ kind: 'refund', requestId: rid(), originalRequestId });
      await e.settled();
      return { outcome, w1: (await e.getAccount(W1))?.balanceMinor, w2: (await e.getAccount(W2))?.balanceMinor };
    } finally {
      await e.close();
    }
  }

  it("reviewer's case: the second refund under a new id is declined, not approved for the raised amount", async () => {
    const file = tamperedFile(() => `UPDATE settlement_log SET refunded_by_seq = NULL, amount_minor = 3000 WHERE seq = ${seq.P}`);
    const r = await refundOn(file, req.P);
    expect(r.outcome).toMatchObject({ status: 'declined', code: 'not_refundable' });
    expect(r.w1).toBe(850);
  });

  it("a purchase whose payer was rewritten is not refunded to the new payer", async () => {
    const file = tamperedFile((num) => `UPDATE settlement_log SET payer_num = ${num(W2)} WHERE seq = ${seq.Q}`);
    const r = await refundOn(file, req.Q);
    expect(r.outcome).toMatchObject({ status: 'declined', code: 'not_refundable' });
    expect(r.w2).toBe(0);
  });

  it('an untampered original is refunded as before', async () => {
    const r = await refundOn(tamperedFile(() => 'SELECT 1'), req.Q);
    expect(r.outcome).toMatchObject({ status: 'approved', amountMinor: 100, balanceAfterMinor: 950 });
  });
});
