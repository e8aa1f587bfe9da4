// Benchmark group `engine`: settlements per second through the engine alone (no MQTT), on a real
// SQLite file with synchronous=FULL, random 128-bit request ids, ≥ 100,000 wallets. Every
// outcome is awaited, and the engine releases none before its withdrawal commit returned.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../hub/ledger/engine.ts';
import { SqliteLedgerStore } from '../hub/ledger/sqlite-store.ts';
import type { Outcome } from '../hub/ledger/types.ts';
import type { Report } from './harness.ts';

const WALLETS = 100_000;
const MERCHANTS = 20;
const SETTLEMENTS = Number(process.env['BENCH_ENGINE_SETTLEMENTS'] ?? 200_000);
// The engine's default maxBatch is 512; under a full queue larger groups amortize the fsync and
// share more B-tree pages per commit (4096 vs 2048: ≈ 10 % less CPU per settlement), so the
// bench runs with 4096 (override to compare).
const MAX_BATCH = Number(process.env['BENCH_ENGINE_BATCH'] ?? 4096);
const IN_FLIGHT = Math.max(4096, MAX_BATCH * 4);
const CURRENCY = 'EUR';

// Random 128-bit request ids from a pooled CSPRNG buffer (one syscall per 4096 ids).
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomRequestId(): string {
  if (poolAt >= pool.length) {
    pool = randomBytes(16 * 4096);
    poolAt = 0;
  }
  poolAt += 16;
  return pool.toString('hex', poolAt - 16, poolAt);
}

interface Measured {
  readonly perSecond: number;
  readonly meanBatch: number;
  readonly maxBatch: number;
  readonly cpuUsPerSettlement: number;
}

/** Sets up a fresh ledger (≥ 100k funded wallets) and measures purchases through the engine. */
async function measure(durability: 'full' | 'pipelined', writerThread = true): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-bench-engine-'));
  try {
    const file = join(dir, 'ledger.db');
    const pageSize = Number(process.env['BENCH_ENGINE_PAGE_SIZE'] ?? 4096);
    const engine = await Engine.open(SqliteLedgerStore.open(file, { pageSize }), { maxBatch: 2048, maxQueue: IN_FLIGHT * 2 });
    await engine.openWallet('0'.repeat(64), CURRENCY); // creates the system accounts
    for (let m = 0; m < MERCHANTS; m++) await engine.openMerchant(`shop-${m}`, { currency: CURRENCY });

    // Wallets (one transaction) funded by top-ups through the engine (setup, not measured).
    const wallets = Array.from({ length: WALLETS }, () => randomBytes(32).toString('hex'));
    await engine.openWallets(wallets, CURRENCY);
    const balanceMinor = 1_000_000;
    for (let i = 0; i < WALLETS; i += 8192) {
      const slice = wallets.slice(i, i + 8192);
      const outs = await Promise.all(slice.map((w) => engine.submit({ kind: 'topup', requestId: randomRequestId(), walletId: w, amountMinor: balanceMinor, currency: CURRENCY, source: 'cash' })));
      if (outs.some((o) => o.status !== 'approved')) throw new Error('top-up declined');
    }
    await engine.close();

    // synchronous=FULL ('full', committed on the engine's thread or in the writer thread) or
    // NORMAL + an fsync of the WAL before any reply ('pipelined').
    const eng = await Engine.open(SqliteLedgerStore.open(file, durability === 'full' ? { writerThread } : { durability }), { maxBatch: MAX_BATCH, maxQueue: IN_FLIGHT * 2 });
    let approved = 0;
    let next = 0;
    const one = async (): Promise<void> => {
      while (next < SETTLEMENTS) {
        const i = next++;
        const o: Outcome = await eng.submit({
          kind: 'purchase',
          requestId: randomRequestId(),
          walletId: wallets[(Math.random() * WALLETS) | 0] as string,
          merchantId: `shop-${i % MERCHANTS}`,
          amountMinor: 1 + (i % 300),
          currency: CURRENCY,
        });
        if (o.status === 'approved') approved++;
      }
    };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: IN_FLIGHT }, one));
    await eng.flush(); // deposits of the last batch included in the time
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const stats = eng.stats;
    await eng.close();
    if (approved !== SETTLEMENTS) throw new Error(`only ${approved}/${SETTLEMENTS} approved`);
    return {
      perSecond: Math.round(SETTLEMENTS / seconds),
      meanBatch: Math.round(stats.commands / stats.batches),
      maxBatch: stats.largestBatch,
      cpuUsPerSettlement: Math.round(((cpu.user + cpu.system) / SETTLEMENTS) * 10) / 10,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(report: Report): Promise<void> {
  // Main figure: the store's defaults — synchronous=FULL, each batch committed (fsync included)
  // by the writer thread while the engine decides the next one.
  const full = await measure('full', true);
  report('engine.settlements_per_s', full.perSecond, 'settlements/s');
  report('engine.batch_size', full.meanBatch, 'commands/batch (mean)');
  report('engine.batch_size_max', full.maxBatch, 'commands/batch');
  // CPU per settlement summed over all threads (process.cpuUsage): robust on a shared machine.
  report('engine.cpu_us_per_settlement', full.cpuUsPerSettlement, 'µs');
  if (process.env['BENCH_ENGINE_COMPARE'] !== '0') {
    // Same durability, committed on the engine's thread (writerThread: false).
    const inThread = await measure('full', false);
    report('engine.settlements_per_s_engine_thread', inThread.perSecond, 'settlements/s');
    report('engine.cpu_us_per_settlement_engine_thread', inThread.cpuUsPerSettlement, 'µs');
  }
  if (process.env['BENCH_ENGINE_PIPELINED'] === '1') {
    const piped = await measure('pipelined');
    report('engine.settlements_per_s_pipelined_fsync', piped.perSecond, 'settlements/s');
    report('engine.batch_size_pipelined_fsync', piped.meanBatch, 'commands/batch (mean)');
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await run((name, value, unit) => console.log(`${name} ${value} ${unit}`));
}
