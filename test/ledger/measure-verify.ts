// What verifyLedger costs on a large ledger (not a test: run it by hand).
//   npx tsx test/ledger/measure-verify.ts [purchases=1000000]
// Builds a consistent ledger straight in SQL (10,000 wallets topped up, then `purchases` purchases
// over 20 merchants, deposited in batched entries of 4,096 as the engine does), then times
// verifyLedger on a read-only store, as verify-cli opens it.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../hub/ledger/engine.ts';
import { SqliteLedgerStore } from '../../hub/ledger/sqlite-store.ts';
import { verifyLedger } from '../../hub/ledger/verify.ts';

const WALLETS = 10_000;
const MERCHANTS = 20;
const DEPOSIT_EVERY = 4096;
/** Distinct for every n (test-helpers' walletId pads with 'a', so it repeats past 9). */
const walletId = (n: number): string => n.toString(16).padStart(64, '0');

async function build(file: string, purchases: number): Promise<void> {
  const engine = await Engine.open(SqliteLedgerStore.open(file, { writerThread: false, backgroundCheckpointMs: 0 }));
  await engine.openWallets(Array.from({ length: WALLETS }, (_, i) => walletId(i + 1)), 'EUR');
  for (let m = 0; m < MERCHANTS; m++) await engine.openMerchant(`shop${m}`, { currency: 'EUR' });
  await engine.close();
  const store = SqliteLedgerStore.open(file, { writerThread: false, backgroundCheckpointMs: 0 });
  const db = store.db;
  const num = (id: string): number => db.prepare('SELECT num FROM account_ids WHERE id = ?').pluck().get(id) as number;
  const float = num('@float:EUR');
  const inTransit = num('@in_transit:EUR');
  const wallet0 = num(walletId(1)); // wallets got consecutive nums
  const shop0 = num('shop0');
  const W = WALLETS;
  const P = purchases;
  db.transaction(() => {
    db.exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${W})
      INSERT INTO settlement_log (seq, request_id, hash, kind, payer_num, payee_num, amount_minor, fee_minor, currency, memo, state, entry_id, balance_after_minor, at_ms, overspent)
      SELECT i, randomblob(16), randomblob(32), 4, ${float}, ${wallet0} + i - 1, 100000, 0, 'EUR', 'cash', 3, i, 100000, i, 0 FROM s`);
    db.exec(`INSERT INTO journal_entries (id, seq, kind, currency, at_ms) SELECT seq, seq, 5, 'EUR', seq FROM settlement_log`);
    db.exec(`INSERT INTO postings (account_num, entry_id, amount_minor) SELECT ${float}, seq, -100000 FROM settlement_log`);
    db.exec(`INSERT INTO postings (account_num, entry_id, amount_minor) SELECT payee_num, seq, 100000 FROM settlement_log`);
    db.exec(`WITH RECURSIVE s(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM s WHERE j < ${P - 1})
      INSERT INTO settlement_log (seq, request_id, hash, kind, payer_num, payee_num, amount_minor, fee_minor, currency, state, entry_id, balance_after_minor, at_ms, overspent)
      SELECT ${W} + 1 + j, randomblob(16), randomblob(32), 0, ${wallet0} + j % ${W}, ${shop0} + j % ${MERCHANTS}, 1 + j % 7, 0, 'EUR', 3, ${W} + 1 + j, 0, ${W} + 1 + j, 0 FROM s`);
    db.exec(`INSERT INTO journal_entries (id, seq, kind, currency, at_ms) SELECT seq, seq, 0, 'EUR', seq FROM settlement_log WHERE seq > ${W}`);
    db.exec(`INSERT INTO postings (account_num, entry_id, amount_minor) SELECT payer_num, seq, -amount_minor FROM settlement_log WHERE seq > ${W}`);
    db.exec(`INSERT INTO postings (account_num, entry_id, amount_minor) SELECT ${inTransit}, seq, amount_minor FROM settlement_log WHERE seq > ${W}`);
    // Batched deposits (seq 0), one entry per DEPOSIT_EVERY purchases.
    const base = W + P;
    db.exec(`INSERT INTO journal_entries (id, seq, kind, currency, at_ms)
      SELECT ${base} + 1 + (seq - ${W} - 1) / ${DEPOSIT_EVERY}, 0, 1, 'EUR', MAX(seq) FROM settlement_log WHERE seq > ${W} GROUP BY (seq - ${W} - 1) / ${DEPOSIT_EVERY}`);
    db.exec(`INSERT INTO postings (account_num, entry_id, amount_minor)
      SELECT ${inTransit}, ${base} + 1 + (seq - ${W} - 1) / ${DEPOSIT_EVERY}, -SUM(amount_minor) FROM settlement_log WHERE seq > ${W} GROUP BY (seq - ${W} - 1) / ${DEPOSIT_EVERY}`);
    db.exec(`INSERT INTO postings (account_num, entry_id, amount_minor)
      SELECT payee_num, ${base} + 1 + (seq - ${W} - 1) / ${DEPOSIT_EVERY}, SUM(amount_minor) FROM settlement_log WHERE seq > ${W} GROUP BY (seq - ${W} - 1) / ${DEPOSIT_EVERY}, payee_num`);
    db.exec(`UPDATE accounts SET balance_minor = COALESCE((SELECT SUM(amount_minor) FROM postings p WHERE p.account_num = accounts.num), 0)`);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'settled_through_seq'").run(W + P);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  await store.close();
}

const purchases = Number(process.argv[2] ?? 1_000_000);
// A second argument keeps the built file there (built once, reused by later runs).
const kept = process.argv[3];
const dir = mkdtempSync(join(tmpdir(), 'tapsettle-measure-verify-'));
try {
  const file = kept ?? join(dir, 'ledger.db');
  let t = performance.now();
  if (!kept || !existsSync(kept)) {
    await build(file, purchases);
    console.error(`built ${WALLETS + purchases} log rows in ${Math.round(performance.now() - t)} ms`);
  }
  for (let run = 0; run < 2; run++) {
    const store = SqliteLedgerStore.open(file, { readonly: true });
    t = performance.now();
    const cpu = process.cpuUsage();
    const report = await verifyLedger(store);
    const ms = performance.now() - t;
    const used = process.cpuUsage(cpu);
    await store.close();
    if (!report.ok) throw new Error(`not ok: ${JSON.stringify(report.firstDiscrepancy)}`);
    console.log(`verify.ms_per_${WALLETS + purchases}_rows: ${Math.round(ms)} ms (cpu ${Math.round((used.user + used.system) / 1000)} ms, heap ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB, load ${loadavg()[0]?.toFixed(1)})`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
