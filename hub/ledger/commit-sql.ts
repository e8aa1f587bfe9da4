// One batch's SQL, shared by the in-thread store and the writer thread (writer-thread.ts): the
// engine's BatchWrite is flattened into arrays of primitives plus one buffer of request ids and
// hashes (cheap to copy between threads), and COMMIT_SOURCE applies it in ONE transaction.
// COMMIT_SOURCE is plain JavaScript so the worker needs no TypeScript loader.
import type Database from 'better-sqlite3';
import { commandKindCode, entryKindCode, logStateCode } from './codes.ts';
import type { BatchWrite } from './store.ts';

/** Values per log insert in `EncodedBatch.log` (request id and hash live in `ids`). */
export const LOG_WIDTH = 17;
/** Bytes per log insert in `EncodedBatch.ids`: 16-byte request id, then 32-byte content hash. */
export const ID_BYTES = 48;

export interface EncodedBatch {
  readonly ids: Uint8Array;
  /** LOG_WIDTH per insert: seq, kind, payer, payee, amount, fee, currency, holdUntil, refSeq, memo, state, code, entryId, balanceAfter, atMs, overspent, refundedBy. */
  readonly log: unknown[];
  /** 9 per row: payer, payee, state, code, entryId, balanceAfter, atMs, overspent, seq. */
  readonly logUpdates: unknown[];
  /** Pairs: seq, state code. */
  readonly logStates: number[];
  readonly doneRange: readonly [number, number] | null;
  /** Pairs: original seq, refund seq. */
  readonly refundMarks: number[];
  /** 5 per entry: id, seq, kind code, currency, atMs. */
  readonly entries: unknown[];
  /** Triples: account, entry id, amount. */
  readonly postings: number[];
  /** Pairs: account, balance. */
  readonly balances: number[];
  /** Pairs: account, flags. */
  readonly flags: number[];
  /** Pairs: seq, release time. */
  readonly holdInserts: number[];
  readonly holdDeletes: number[];
  readonly settledThroughSeq: number | null;
}

export function encodeBatch(w: BatchWrite): EncodedBatch {
  const n = w.logInserts.length;
  const ids = new Uint8Array(n * ID_BYTES);
  const view = Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength);
  // Built by push, never preallocated: `new Array(n)` is a holey array, which postMessage
  // serializes key by key (measured 4–6x slower than a packed one, on the event loop).
  const log: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const r = w.logInserts[i] as BatchWrite['logInserts'][number];
    view.write(r.requestId, i * ID_BYTES, 16, 'hex');
    view.write(r.hash, i * ID_BYTES + 16, 32, 'hex');
    log.push(
      r.seq,
      commandKindCode.encode(r.kind),
      r.payerNum,
      r.payeeNum,
      r.amountMinor,
      r.feeMinor,
      r.currency,
      r.holdUntilMs,
      r.refSeq,
      r.memo,
      logStateCode.encode(r.state),
      r.code,
      r.entryId,
      r.balanceAfterMinor,
      r.atMs,
      r.overspent ? 1 : 0,
      r.refundedBySeq,
    );
  }
  const logUpdates: unknown[] = [];
  for (const r of w.logUpdates) {
    logUpdates.push(r.payerNum, r.payeeNum, logStateCode.encode(r.state), r.code, r.entryId, r.balanceAfterMinor, r.atMs, r.overspent ? 1 : 0, r.seq);
  }
  const entries: unknown[] = [];
  for (const e of w.entries) entries.push(e.id, e.seq, entryKindCode.encode(e.kind), e.currency, e.atMs);
  const postings: number[] = [];
  for (const p of w.postings) postings.push(p.accountNum, p.entryId, p.amountMinor);
  const balances: number[] = [];
  for (const [num, bal] of w.balances) balances.push(num, bal);
  const flags: number[] = [];
  for (const [num, f] of w.flags) flags.push(num, f);
  const holdInserts: number[] = [];
  for (const h of w.holdInserts) holdInserts.push(h.seq, h.releaseAtMs);
  return {
    ids,
    log,
    logUpdates,
    logStates: w.logStates.flatMap(([seq, state]) => [seq, logStateCode.encode(state)]),
    doneRange: w.doneRange,
    refundMarks: w.refundMarks.flatMap(([orig, refund]) => [orig, refund]),
    entries,
    postings,
    balances,
    flags,
    holdInserts,
    holdDeletes: [...w.holdDeletes],
    settledThroughSeq: w.settledThroughSeq,
  };
}

/**
 * `(db) => (batches) => void`: prepares the statements once, returns the committing function
 * (one transaction for all the batches given, in order).
 * Inserts go in key order (request ids, postings by account, balances by account) so each
 * B-tree is walked forward instead of hopped; many rows per INSERT statement because the
 * driver's per-call cost dominates small rows.
 */
export const COMMIT_SOURCE = `(db) => {
  const LOG_WIDTH = ${LOG_WIDTH};
  const ID_BYTES = ${ID_BYTES};
  const DONE = ${logStateCode.encode('done')};
  const WITHDRAWN = ${logStateCode.encode('withdrawn')};
  const chunked = (table, columns, chunk) => {
    const row = '(' + columns.map(() => '?').join(', ') + ')';
    const head = 'INSERT INTO ' + table + ' (' + columns.join(', ') + ') VALUES ';
    const many = db.prepare(head + Array(chunk).fill(row).join(', '));
    const one = db.prepare(head + row);
    const width = columns.length;
    const args = new Array(chunk * width);
    let at = 0;
    return {
      reset() { at = 0; },
      push(v) {
        args[at++] = v;
        if (at === args.length) { many.run(args); at = 0; }
      },
      flush() {
        for (let r = 0; r < at; r += width) one.run(args.slice(r, r + width));
        at = 0;
      },
    };
  };
  const logRows = chunked('settlement_log', ['seq', 'request_id', 'hash', 'kind', 'payer_num', 'payee_num', 'amount_minor', 'fee_minor', 'currency',
    'hold_until_ms', 'ref_seq', 'memo', 'state', 'code', 'entry_id', 'balance_after_minor', 'at_ms', 'overspent', 'refunded_by_seq'], 16);
  const entryRows = chunked('journal_entries', ['id', 'seq', 'kind', 'currency', 'at_ms'], 64);
  const postingRows = chunked('postings', ['account_num', 'entry_id', 'amount_minor'], 64);
  const logUpdate = db.prepare('UPDATE settlement_log SET payer_num = ?, payee_num = ?, state = ?, code = ?, entry_id = ?, balance_after_minor = ?, at_ms = ?, overspent = ? WHERE seq = ?');
  const logState = db.prepare('UPDATE settlement_log SET state = ? WHERE seq = ?');
  const doneRange = db.prepare('UPDATE settlement_log SET state = ' + DONE + ' WHERE seq BETWEEN ? AND ? AND state = ' + WITHDRAWN);
  const refundMark = db.prepare('UPDATE settlement_log SET refunded_by_seq = ? WHERE seq = ?');
  const balance = db.prepare('UPDATE accounts SET balance_minor = ? WHERE num = ?');
  const flags = db.prepare('UPDATE accounts SET flags = ? WHERE num = ?');
  const holdInsert = db.prepare('INSERT INTO holds (seq, release_at_ms) VALUES (?, ?)');
  const holdDelete = db.prepare('DELETE FROM holds WHERE seq = ?');
  const setSettled = db.prepare("UPDATE meta SET value = ? WHERE key = 'settled_through_seq'");
  const byPair = (a, b) => a[0] - b[0];
  const apply = (b) => {
    logRows.reset();
    entryRows.reset();
    postingRows.reset();
    const ids = Buffer.from(b.ids.buffer, b.ids.byteOffset, b.ids.byteLength);
    const n = b.log.length / LOG_WIDTH;
    const order = Array.from({ length: n }, (_, i) => i);
    if (n > 1) {
      // Numeric sort on the first 48 bits (one native compare only on a tie): same order as the bytes.
      const keys = new Float64Array(n);
      for (let i = 0; i < n; i++) keys[i] = ids.readUIntBE(i * ID_BYTES, 6);
      order.sort((x, y) => keys[x] - keys[y] || ids.compare(ids, y * ID_BYTES, y * ID_BYTES + 16, x * ID_BYTES, x * ID_BYTES + 16));
    }
    for (const i of order) {
      const o = i * LOG_WIDTH;
      const at = i * ID_BYTES;
      logRows.push(b.log[o]);
      logRows.push(ids.subarray(at, at + 16));
      logRows.push(ids.subarray(at + 16, at + ID_BYTES));
      for (let c = 1; c < LOG_WIDTH; c++) logRows.push(b.log[o + c]);
    }
    logRows.flush();
    for (let i = 0; i < b.logUpdates.length; i += 9) logUpdate.run(b.logUpdates.slice(i, i + 9));
    for (let i = 0; i < b.logStates.length; i += 2) logState.run(b.logStates[i + 1], b.logStates[i]);
    if (b.doneRange !== null) doneRange.run(b.doneRange[0], b.doneRange[1]);
    for (let i = 0; i < b.refundMarks.length; i += 2) refundMark.run(b.refundMarks[i + 1], b.refundMarks[i]);
    for (const v of b.entries) entryRows.push(v);
    entryRows.flush();
    const p = b.postings;
    const pOrder = Array.from({ length: p.length / 3 }, (_, i) => i * 3);
    pOrder.sort((x, y) => p[x] - p[y] || p[x + 1] - p[y + 1]);
    for (const o of pOrder) { postingRows.push(p[o]); postingRows.push(p[o + 1]); postingRows.push(p[o + 2]); }
    postingRows.flush();
    const bal = [];
    for (let i = 0; i < b.balances.length; i += 2) bal.push([b.balances[i], b.balances[i + 1]]);
    bal.sort(byPair);
    for (const [num, v] of bal) balance.run(v, num);
    for (let i = 0; i < b.flags.length; i += 2) flags.run(b.flags[i + 1], b.flags[i]);
    for (let i = 0; i < b.holdInserts.length; i += 2) holdInsert.run(b.holdInserts[i], b.holdInserts[i + 1]);
    for (const seq of b.holdDeletes) holdDelete.run(seq);
    if (b.settledThroughSeq !== null) setSettled.run(b.settledThroughSeq);
  };
  // One transaction for the batches, none of its own for each: a savepoint per batch would copy
  // every page it touches to a sub-journal (spilled to a temporary file past 64 KiB), and the
  // batches of a group fail together anyway.
  const tx = db.transaction((batches) => { for (const b of batches) apply(b); });
  return (batches) => tx.immediate(batches);
}`;

/** COMMIT_SOURCE compiled for a connection on this thread. */
export function makeCommit(db: Database.Database): (batches: readonly EncodedBatch[]) => void {
  // Compiled from the same text the writer thread runs: one implementation of the batch SQL.
  const make = new Function(`return ${COMMIT_SOURCE};`)() as (db: Database.Database) => (batches: readonly EncodedBatch[]) => void;
  return make(db);
}
