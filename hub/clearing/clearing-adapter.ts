/**
 * Merchant payouts (seed 001 fig. 11) go through a clearing adapter: transfer instructions the
 * operator carries out (TransferFileClearing, the default), a payment provider's API, or a
 * simulator in tests. Idempotent by payoutId.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
export interface ClearingTransfer {
  readonly payoutId: string;
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
}

export type ClearingResult = { ok: true; reference: string } | { ok: false; reason: string };

export interface ClearingAdapter {
  transfer(t: ClearingTransfer): Promise<ClearingResult>;
}

/**
 * Records transfers in memory (each payout id pays once: `transfers`). Fault injection for the
 * retry path: `failNext` fails the next transfer, `unavailable` every one until it is cleared;
 * `attempts` counts every call, answered or failed.
 */
export class SimulatedClearing implements ClearingAdapter {
  readonly transfers: ClearingTransfer[] = [];
  readonly #done = new Map<string, ClearingResult>();
  failNext = false;
  unavailable = false;
  attempts = 0;

  async transfer(t: ClearingTransfer): Promise<ClearingResult> {
    this.attempts++;
    const known = this.#done.get(t.payoutId);
    if (known) return known;
    if (this.failNext || this.unavailable) {
      this.failNext = false;
      return { ok: false, reason: 'simulated_bank_unavailable' };
    }
    this.transfers.push(t);
    const result: ClearingResult = { ok: true, reference: `SIM-${t.payoutId.slice(-12)}` };
    this.#done.set(t.payoutId, result);
    return result;
  }
}

/**
 * The default adapter: payouts as bank-transfer instructions the operator carries out. One file
 * per payout, `<payoutId>.json` in `dir` (mode 0600, written whole and fsynced before the payout
 * counts as sent), holding the merchant, amount, currency and the payout id to quote as the
 * transfer's end-to-end reference. Idempotent: a payout id already written answers with its
 * first reference; other content under it is refused, never overwritten. The operator moves a file
 * carried out to `done/`, where it still counts: a payout sent again (a restored registry) is
 * answered from it, not written for a second transfer.
 */
export class TransferFileClearing implements ClearingAdapter {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  async transfer(t: ClearingTransfer): Promise<ClearingResult> {
    // The id names a file: only what a payout id can be (32 hex chars), never a path.
    if (!/^[0-9a-f]{16,64}$/.test(t.payoutId)) return { ok: false, reason: 'payout id is not hex' };
    const name = `${t.payoutId}.json`;
    const file = join(this.dir, name);
    const instruction: TransferInstruction = { reference: `TRANSFER-${t.payoutId}`, payoutId: t.payoutId, merchantId: t.merchantId, amountMinor: t.amountMinor, currency: t.currency };
    for (const known of [file, join(this.dir, 'done', name)]) {
      try {
        const written = JSON.parse(await readFile(known, 'utf8')) as TransferInstruction;
        const same = written.merchantId === t.merchantId && written.amountMinor === t.amountMinor && written.currency === t.currency;
        return same ? { ok: true, reference: written.reference } : { ok: false, reason: 'payout id already written with other content' };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { ok: false, reason: `cannot read ${known}: ${(err as Error).message}` };
      }
    }
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(file, `${JSON.stringify({ ...instruction, writtenAt: new Date().toISOString() }, null, 2)}\n`, { mode: 0o600, fsync: true });
      return { ok: true, reference: instruction.reference };
    } catch (err) {
      return { ok: false, reason: `cannot write ${file}: ${(err as Error).message}` };
    }
  }
}

interface TransferInstruction {
  readonly reference: string;
  readonly payoutId: string;
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
}
