import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newRequestId } from '../../protocol/index.ts';
import { SimulatedClearing, TransferFileClearing, type ClearingAdapter } from './clearing-adapter.ts';

const scratch = mkdtempSync(join(tmpdir(), 'tapsettle-clearing-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(scratch, `out-${dirs++}`);

/** Contract every clearing adapter passes: idempotent by payout id. */
function contract(name: string, make: () => ClearingAdapter): void {
  describe(`clearing adapter contract: ${name}`, () => {
    it('answers a repeated payout id with the first answer and pays once', async () => {
      const c = make();
      const t = { payoutId: 'ab'.repeat(16), merchantId: 'snacks', amountMinor: 500, currency: 'EUR' };
      const first = await c.transfer(t);
      expect(first.ok).toBe(true);
      expect(await c.transfer(t)).toEqual(first);
    });
  });
}

contract('SimulatedClearing', () => new SimulatedClearing());
contract('TransferFileClearing', () => new TransferFileClearing(freshDir()));

describe('TransferFileClearing', () => {
  const t = { payoutId: 'ef'.repeat(16), merchantId: 'snacks', amountMinor: 500, currency: 'EUR' };

  it('writes one owner-only instruction file per payout, with the payout id to quote as the reference', async () => {
    const dir = freshDir();
    expect(await new TransferFileClearing(dir).transfer(t)).toEqual({ ok: true, reference: `TRANSFER-${t.payoutId}` });
    const file = join(dir, `${t.payoutId}.json`);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ reference: `TRANSFER-${t.payoutId}`, ...t });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    // A new instance (the hub restarted) answers the same id from the file, and writes nothing more.
    expect(await new TransferFileClearing(dir).transfer(t)).toEqual({ ok: true, reference: `TRANSFER-${t.payoutId}` });
    expect(readdirSync(dir)).toEqual([`${t.payoutId}.json`]);
    // Carried out and moved to done/: still known, never written for a second transfer.
    mkdirSync(join(dir, 'done'));
    renameSync(file, join(dir, 'done', `${t.payoutId}.json`));
    expect(await new TransferFileClearing(dir).transfer(t)).toEqual({ ok: true, reference: `TRANSFER-${t.payoutId}` });
    expect(readdirSync(dir)).toEqual(['done']);
  });

  it('refuses other content under a written id, an id that is not hex, and a folder it cannot write: never a success', async () => {
    const dir = freshDir();
    const c = new TransferFileClearing(dir);
    await c.transfer(t);
    expect(await c.transfer({ ...t, amountMinor: 5000 })).toMatchObject({ ok: false });
    expect(JSON.parse(readFileSync(join(dir, `${t.payoutId}.json`), 'utf8'))).toMatchObject({ amountMinor: 500 });
    expect(await c.transfer({ ...t, payoutId: '../../etc/passwd' })).toMatchObject({ ok: false });
    if (process.getuid?.() !== 0) {
      const locked = freshDir();
      await new TransferFileClearing(locked).transfer(t);
      chmodSync(locked, 0o500);
      expect(await new TransferFileClearing(locked).transfer({ ...t, payoutId: 'aa'.repeat(16) })).toMatchObject({ ok: false });
      chmodSync(locked, 0o700);
    }
  });
});

describe('SimulatedClearing', () => {
  it('fails once on demand, then succeeds with the same id', async () => {
    const c = new SimulatedClearing();
    c.failNext = true;
    const t = { payoutId: 'cd'.repeat(16), merchantId: 'snacks', amountMinor: 500, currency: 'EUR' };
    expect(await c.transfer(t)).toEqual({ ok: false, reason: 'simulated_bank_unavailable' });
    expect((await c.transfer(t)).ok).toBe(true);
    expect(c.transfers).toHaveLength(1);
  });

  it('gives payouts made in the same millisecond different references (payout ids start with their time)', async () => {
    const c = new SimulatedClearing();
    const refs = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = await c.transfer({ payoutId: newRequestId(1_796_000_000_000), merchantId: 'snacks', amountMinor: 500, currency: 'EUR' });
      if (r.ok) refs.add(r.reference);
    }
    expect(refs.size).toBe(20);
  });
});
