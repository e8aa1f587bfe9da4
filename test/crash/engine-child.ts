// Child process for the engine crash test: runs the engine under load against a real SQLite file
// and reports every outcome on stdout (one JSON line each) the moment its promise resolves.
// Pipes are synchronous on Linux, so a line printed is in the parent's pipe before any SIGKILL.
// Usage: node --import tsx engine-child.ts <db-file> <run-number> <--run|--finish> <full|pipelined|writer-thread>
import { Engine } from '../../hub/ledger/engine.ts';
import { SqliteLedgerStore } from '../../hub/ledger/sqlite-store.ts';
import type { Command } from '../../hub/ledger/types.ts';

const [file, runArg, mode, durabilityArg] = process.argv.slice(2);
const storeOptions = durabilityArg === 'pipelined' ? { durability: 'pipelined' as const } : durabilityArg === 'writer-thread' ? { writerThread: true } : { writerThread: false };
if (file === undefined || runArg === undefined) throw new Error('usage: engine-child <db-file> <run> <--run|--finish> <full|pipelined|writer-thread>');
const run = Number(runArg);
const WALLETS = 200;
const IN_FLIGHT = 64;

/**
 * Purchases with a cancellation window given as its length: it ends this long after the row is
 * logged. engine-crash.test.ts checks these holds with its own copy (importing this file runs it).
 */
const HOLD_MS = 3_600_000;
const walletId = (n: number): string => n.toString(16).padStart(64, 'c');
/** Deterministic ids: run r, counter i. A run first re-sends the previous run's first ids (terminal retries). */
const requestId = (r: number, i: number): string => `${r.toString(16).padStart(8, '0')}${i.toString(16).padStart(24, '0')}`;

function commandFor(r: number, i: number): Command {
  const id = requestId(r, i);
  const w = walletId(((r * 7919 + i * 104_729) % WALLETS) + 1);
  switch (i % 10) {
    case 0:
      return { kind: 'topup', requestId: id, walletId: w, amountMinor: 500, currency: 'EUR', source: 'cash' };
    case 1:
      return { kind: 'transfer', requestId: id, fromWalletId: w, toWalletId: walletId(((i * 31) % WALLETS) + 1), amountMinor: 7, currency: 'EUR' };
    case 2:
      return { kind: 'purchase', requestId: id, walletId: w, merchantId: 'mall.cafe', amountMinor: 1 + (i % 90), currency: 'EUR', feeMinor: 1 };
    case 3:
      return { kind: 'refund', requestId: id, originalRequestId: requestId(r, i - 1) };
    case 4:
      return { kind: 'purchase', requestId: id, walletId: w, merchantId: 'shop', amountMinor: 1 + (i % 40), currency: 'EUR', holdMs: HOLD_MS };
    default:
      return { kind: 'purchase', requestId: id, walletId: w, merchantId: 'shop', amountMinor: 1 + (i % 50), currency: 'EUR' };
  }
}

const engine = await Engine.open(SqliteLedgerStore.open(file, storeOptions), { maxBatch: 256 });
if (mode === '--finish') {
  await engine.close();
  process.stdout.write('finished\n');
  process.exit(0);
}
await engine.openMerchant('shop', { currency: 'EUR' });
await engine.openMerchant('mall', { currency: 'EUR' });
await engine.openMerchant('mall.cafe', { currency: 'EUR', parentId: 'mall', shareBps: 2000 });
for (let n = 1; n <= WALLETS; n++) await engine.openWallet(walletId(n), 'EUR');
process.stdout.write('ready\n');

let i = 0;
const retries = run > 0 ? 300 : 0;
async function worker(): Promise<void> {
  for (;;) {
    const k = i++;
    const cmd = k < retries ? commandFor(run - 1, k) : commandFor(run, k - retries);
    const o = await engine.submit(cmd);
    process.stdout.write(`${JSON.stringify(o)}\n`);
  }
}
await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
