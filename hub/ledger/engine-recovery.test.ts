// Recovery (seed 004 claim 33) of more `logged` rows than one turn settles (maxBatch), with a
// second crash after the first recovery turn: no logged row may fall behind settled_through_seq.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from './engine.ts';
import { SqliteLedgerStore } from './sqlite-store.ts';
import { rid, tempLedger, walletId, type TempLedger } from './test-helpers.ts';
import { verifyLedger } from './verify.ts';

const W1 = walletId(1);
const open = (file: string): SqliteLedgerStore => SqliteLedgerStore.open(file, { writerThread: false, backgroundCheckpointMs: 0 });

let ledger: TempLedger | undefined;
let crashDir: string | undefined;
afterEach(() => {
  ledger?.cleanup();
  ledger = undefined;
  if (crashDir) rmSync(crashDir, { recursive: true, force: true });
  crashDir = undefined;
});

describe('Engine recovery of more logged rows than maxBatch', () => {
  it('keeps every still-logged row after settled_through_seq, so a second crash loses none of them', async () => {
    ledger = tempLedger({ writerThread: false });
    const setup = await ledger.openEngine();
    await setup.openWallet(W1, 'EUR');
    await setup.openMerchant('shop', { currency: 'EUR' });
    await setup.submit({ kind: 'topup', requestId: rid(), walletId: W1, amountMinor: 1000, currency: 'EUR', source: 'cash' });
    await setup.close();

    // Crash 1: seven commands logged in one turn, none settled. Top-ups and payouts finish in the
    // turn that settles them (a purchase would stay withdrawn one more turn and hold
    // settled_through_seq back by itself).
    const crashing = await ledger.openEngine({ maxBatch: 10, hooks: { stopAfter: 'log' } });
    const commands = Array.from({ length: 7 }, (_, i) =>
      crashing
        .submit(
          i % 2 === 0
            ? { kind: 'topup', requestId: rid(), walletId: W1, amountMinor: 10, currency: 'EUR', source: 'cash' }
            : { kind: 'purchase', requestId: rid(), walletId: W1, merchantId: 'shop', amountMinor: 5000, currency: 'EUR' }, // declined: insufficient_funds
        )
        .catch((e: unknown) => e),
    );
    for (const p of await Promise.all(commands)) expect(p).toMatchObject({ code: 'engine_closed' });

    // Recovery settles three rows a turn; the file as it is right after the first recovery turn is
    // what a crash there (crash 2) leaves on disk.
    const store = open(ledger.file);
    const commit = store.commitBatch.bind(store);
    let afterFirstTurn: Buffer | undefined;
    store.commitBatch = async (w) => {
      const receipt = await commit(w);
      await receipt.durable;
      afterFirstTurn ??= store.db.serialize();
      return receipt;
    };
    const recovering = await Engine.open(store, { maxBatch: 3 });
    await recovering.close();
    if (!afterFirstTurn) throw new Error('recovery committed nothing');

    crashDir = mkdtempSync(join(tmpdir(), 'tapsettle-recovery-'));
    const file = join(crashDir, 'ledger.db');
    writeFileSync(file, afterFirstTurn);
    const image = open(file);
    const settledThrough = image.db.prepare("SELECT value FROM meta WHERE key = 'settled_through_seq'").pluck().get() as number;
    const stillLogged = image.db.prepare('SELECT seq FROM settlement_log WHERE state = 0 ORDER BY seq').pluck().all() as number[];
    expect(stillLogged).toHaveLength(4);
    expect(settledThrough).toBeLessThan(stillLogged[0] as number);
    await image.close();

    // Restart after crash 2: recovery finishes the other four.
    const restarted = await Engine.open(open(file), { maxBatch: 3 });
    expect((await restarted.getAccount(W1))?.balanceMinor).toBe(1000 + 4 * 10);
    expect((await restarted.getAccount('shop'))?.balanceMinor).toBe(0);
    expect((await restarted.recentSettlements(10)).filter((s) => s.state === 'logged')).toEqual([]);
    expect((await verifyLedger(restarted.store)).ok).toBe(true);
    await restarted.close();
  });
});
