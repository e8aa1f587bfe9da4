// Benchmark group `restore`: what re-entering wallet claims from the ledger costs at hub start
// (hub/service/claim-memo.ts), and reading the ledger's request ids into its negative cache
// (hub/ledger/bloom-filter.ts). Ledger rows are written straight into a real SQLite ledger file
// (the scan and the registry's inserts are what is measured, not the engine).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteLedgerStore } from '../hub/ledger/sqlite-store.ts';
import { Registry } from '../hub/registry/registry.ts';
import { restoreClaimsFromLedger } from '../hub/service/claim-memo.ts';
import { round, type Report } from './harness.ts';

const SCAN_ROWS = 1_000_000;
const CLAIM_ROWS = 100_000;
const WALLETS = 10_000;

/** `rows` log rows from seq 1; every `claimEvery`-th carries a claim memo (0: none), wallets drawn from WALLETS. */
function fillLedger(store: SqliteLedgerStore, rows: number, claimEvery: number): void {
  const memo =
    claimEvery === 0
      ? 'NULL'
      : `CASE WHEN i % ${claimEvery} = 0 THEN 'claim ' || printf('%064x', i % ${WALLETS}) || ' ' || lower(hex(randomblob(16))) || ' ' || lower(hex(randomblob(16))) || ' ' || i ELSE NULL END`;
  store.db.exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows})
    INSERT INTO settlement_log (seq, request_id, hash, kind, amount_minor, fee_minor, currency, memo, state, at_ms, overspent)
    SELECT i, randomblob(16), randomblob(32), 1, 100, 0, 'EUR', ${memo}, 3, i, 0 FROM s`);
}

async function timed(dir: string, rows: number, claimEvery: number): Promise<{ ms: number; restored: number; reopenMs: number }> {
  mkdirSync(dir);
  const store = SqliteLedgerStore.open(join(dir, 'ledger.sqlite'), { writerThread: false, backgroundCheckpointMs: 0 });
  const registry = Registry.open(join(dir, 'registry.sqlite'));
  try {
    fillLedger(store, rows, claimEvery);
    const start = performance.now();
    const restored = await restoreClaimsFromLedger(registry, store);
    const ms = performance.now() - start;
    const again = performance.now();
    await restoreClaimsFromLedger(registry, store);
    return { ms, restored, reopenMs: performance.now() - again };
  } finally {
    await registry.close();
    await store.close();
  }
}

/** Opening the ledger as the hub does (writer thread), and how long its request-id filter then takes to fill in the background. */
async function openMs(file: string): Promise<{ openMs: number; fillMs: number }> {
  const start = performance.now();
  const store = SqliteLedgerStore.open(file, { backgroundCheckpointMs: 0 });
  const openMs = performance.now() - start;
  try {
    if (!(await store.requestIdFilterFilled())) throw new Error('the request-id filter did not fill');
    return { openMs, fillMs: performance.now() - start };
  } finally {
    await store.close();
  }
}

export async function run(report: Report): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-bench-restore-'));
  try {
    // First start after upgrading from a build without claim memos: the whole log, nothing to enter.
    const scan = await timed(join(dir, 'scan'), SCAN_ROWS, 0);
    report('restore.first_start_scan_ms_per_1m_rows', round(scan.ms, 0), 'ms');
    // Any start: the ledger opens at once; the request-id filter fills behind it (lookups read until then).
    const open = await openMs(join(dir, 'scan', 'ledger.sqlite'));
    report('restore.ledger_open_ms_per_1m_rows', round(open.openMs, 0), 'ms');
    report('restore.request_id_filter_fill_ms_per_1m_rows', round(open.fillMs, 0), 'ms');
    // A registry file lost entirely: every claim of the log entered again (half the rows carry one).
    const lost = await timed(join(dir, 'lost'), CLAIM_ROWS * 2, 2);
    if (lost.restored !== CLAIM_ROWS) throw new Error(`expected ${CLAIM_ROWS} claims restored, got ${lost.restored}`);
    report('restore.registry_lost_claims_per_s', Math.round((lost.restored * 1000) / lost.ms), 'claims/s');
    // Every later start: from the seq of the registry's last claim.
    report('restore.next_start_ms', round(lost.reopenMs, 1), 'ms');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
