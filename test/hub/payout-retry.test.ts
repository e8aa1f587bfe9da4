// Merchant payouts the clearing did not take: a typed failure (never `ok`), sent again with the
// same payout id by the running hub's timer (with backoff), at the hub's start and by the
// operator's `payout retry` — and a ledger payout whose registry record a crash lost is found at
// start and sent. Real SQLite files in a temp folder, the real hub, the simulated clearing with
// fault injection (it pays each payout id once, so `transfers` is what the bank paid).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startAdminServer } from '../../hub/admin/admin-channel.ts';
import { SimulatedClearing } from '../../hub/clearing/clearing-adapter.ts';
import { isPayoutHeld, type PayoutOutcome } from '../../hub/clearing/payouts.ts';
import { adminRunnerFor } from '../../hub/cli/main.ts';
import { EXIT_PENDING } from '../../hub/cli/exit-codes.ts';
import { createHub, type CreateHubOptions, type Hub } from '../../hub/service/hub.ts';
import { InputError } from '../../hub/service/input-error.ts';
import { SNACKS, T0, cashTopup, enroll, purchase, readResult, register, runCli } from './kit.ts';

const cli = (dataDir: string, ...args: string[]) => runCli(dataDir, args, { timeoutMs: 30_000 });

/** No timer, no send at start: only what the test (or the operator) triggers. */
const NO_TIMER = { intervalMs: 0 } as const;
/** A timer that never comes round during a test: only the start-up round sends. */
const START_ONLY = { intervalMs: 3600_000 } as const;

const dirs: string[] = [];
const open: Hub[] = [];

afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tapsettle-payout-'));
  dirs.push(d);
  return d;
}

async function openHub(dataDir: string, clearing: SimulatedClearing, payoutRetry: CreateHubOptions['payoutRetry']): Promise<Hub> {
  const hub = await createHub({ dataDir, clock: () => T0, holdReleaseIntervalMs: 0, clearing, ...(payoutRetry ? { payoutRetry } : {}) });
  open.push(hub);
  return hub;
}

async function closeHub(hub: Hub): Promise<void> {
  open.splice(open.indexOf(hub), 1);
  await hub.close();
}

/** A merchant `snacks` with 500 minor units to pay out (two colas sold). */
async function merchantWithSales(hub: Hub): Promise<void> {
  const pos = await enroll(hub, 'pos-1', 'pos', 'snacks');
  const w = await register(hub);
  hub.importCatalog(SNACKS);
  expect(readResult(hub, await hub.handleRequest(pos.id, cashTopup(pos, w, 1000, T0).bytes)).status).toBe('approved');
  expect(readResult(hub, await hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'cola', qty: 2, unitMinor: 250 }], T0).bytes)).status).toBe('approved');
  await hub.engine.flush();
}

async function balance(hub: Hub, id = 'snacks'): Promise<number | undefined> {
  return (await hub.showAccount(id))?.account.balanceMinor;
}

function expectHeld(r: PayoutOutcome, amountMinor = 500): string {
  expect(r).toMatchObject({ ok: false, code: 'UNAVAILABLE', payout: { merchantId: 'snacks', amountMinor, state: 'failed', reference: null } });
  if (!isPayoutHeld(r)) throw new Error('expected a held payout');
  expect(r.retry).toBe(`tapsettle payout retry --payout-id ${r.payout.payoutId}`);
  return r.payout.payoutId;
}

/** Copies the registry files (the database and its WAL) from one folder to another. */
function copyRegistry(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(to)) if (f.startsWith('registry.sqlite')) rmSync(join(to, f));
  for (const f of readdirSync(from)) if (f.startsWith('registry.sqlite')) copyFileSync(join(from, f), join(to, f));
}

describe('a payout the clearing does not take', () => {
  it('is a typed failure, held in clearing, and the timer sends it again (backing off) until sent — once', async () => {
    const dir = tempDir();
    const clearing = new SimulatedClearing();
    const hub = await openHub(dir, clearing, { intervalMs: 10, maxIntervalMs: 160 });
    await merchantWithSales(hub);
    clearing.unavailable = true;
    const id = expectHeld(await hub.payout({ merchantId: 'snacks' }));
    // Debited once and held in the clearing account: the money is not lost, and not paid yet.
    expect(await balance(hub)).toBe(0);
    expect(await balance(hub, '@clearing:EUR')).toBe(500);
    expect(clearing.transfers).toEqual([]);
    // Re-running the payout cannot debit again, and says what is held.
    expect(await hub.payout({ merchantId: 'snacks' })).toMatchObject({ ok: false, code: 'AMOUNT_INVALID', detail: expect.stringContaining(id) as string });

    // The timer keeps trying while the clearing is down, backing off (10, 20, 40, 80, 160, 160 ms…).
    await vi.waitFor(() => expect(clearing.attempts).toBeGreaterThanOrEqual(4), { timeout: 5000, interval: 10 });
    await new Promise((r) => setTimeout(r, 600));
    expect(hub.registry.payout(id)?.state).toBe('failed');
    expect(clearing.attempts).toBeLessThan(15); // every 10 ms without backoff: ~100 in this time

    clearing.unavailable = false;
    await vi.waitFor(() => expect(hub.registry.payout(id)?.state).toBe('sent'), { timeout: 5000, interval: 10 });
    expect(hub.registry.payout(id)).toMatchObject({ amountMinor: 500, reference: `SIM-${id.slice(-12)}` });
    expect(clearing.transfers).toEqual([{ payoutId: id, merchantId: 'snacks', amountMinor: 500, currency: 'EUR' }]);
    // Sent means done: later rounds do not send it again.
    const attempts = clearing.attempts;
    await new Promise((r) => setTimeout(r, 100));
    expect(clearing.attempts).toBe(attempts);
    expect(await balance(hub)).toBe(0);
    expect((await hub.verifyLedger()).ok).toBe(true);
  });

  it('is sent at the next start of the hub (no timer before), once', async () => {
    const dir = tempDir();
    const clearing = new SimulatedClearing();
    let hub = await openHub(dir, clearing, NO_TIMER);
    await merchantWithSales(hub);
    clearing.failNext = true;
    const id = expectHeld(await hub.payout({ merchantId: 'snacks' }));
    await closeHub(hub);

    hub = await openHub(dir, clearing, START_ONLY);
    await vi.waitFor(() => expect(hub.registry.payout(id)?.state).toBe('sent'), { timeout: 5000, interval: 10 });
    expect(clearing.transfers.map((t) => t.payoutId)).toEqual([id]);
    expect(clearing.attempts).toBe(2); // the failed send, the start-up send
    expect(await balance(hub)).toBe(0);
    expect((await hub.verifyLedger()).ok).toBe(true);
  });

  it('is sent by the operator retry (all, or by id), idempotent toward the clearing', async () => {
    const dir = tempDir();
    const clearing = new SimulatedClearing();
    const hub = await openHub(dir, clearing, NO_TIMER);
    await merchantWithSales(hub);
    clearing.unavailable = true;
    const id = expectHeld(await hub.payout({ merchantId: 'snacks', amountMinor: 200 }), 200);
    expect(await hub.retryPayouts()).toMatchObject([{ payoutId: id, state: 'failed', reason: 'simulated_bank_unavailable' }]);
    clearing.unavailable = false;
    await expect(hub.retryPayouts({ payoutId: 'ab'.repeat(16) })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await hub.retryPayouts({ payoutId: id })).toMatchObject([{ payoutId: id, state: 'sent' }]);
    expect(await hub.retryPayouts()).toEqual([]);
    // The same payout id again (an operator retrying the command) is the same payout, not a second debit.
    expect(await hub.payout({ merchantId: 'snacks', amountMinor: 200, payoutId: id })).toMatchObject({ ok: true, payout: { payoutId: id, state: 'sent' } });
    expect(await hub.payout({ merchantId: 'snacks', amountMinor: 300, payoutId: id })).toMatchObject({ ok: false, code: 'DUPLICATE_MISMATCH' });
    expect(clearing.transfers.map((t) => t.payoutId)).toEqual([id]);
    expect(await balance(hub)).toBe(300);
  });
});

describe('a crash between the ledger commit and the registry record', () => {
  it('leaves a ledger payout the start finds, records and sends once', async () => {
    const dir = tempDir();
    const snapshot = join(tempDir(), 'registry');
    const clearing = new SimulatedClearing();
    let hub = await openHub(dir, clearing, NO_TIMER);
    await merchantWithSales(hub);
    await closeHub(hub);
    copyRegistry(dir, snapshot); // the registry as it was before the payout

    hub = await openHub(dir, clearing, NO_TIMER);
    clearing.unavailable = true; // nothing reaches the bank, as when the process dies before the send
    const id = expectHeld(await hub.payout({ merchantId: 'snacks' }));
    await closeHub(hub);
    copyRegistry(snapshot, dir); // the registry lost the payout's record: only the ledger has it
    clearing.unavailable = false;

    // Reconciled before createHub returns (even with no timer: the CLI opening the folder).
    hub = await openHub(dir, clearing, NO_TIMER);
    expect(hub.registry.payout(id)).toEqual({ payoutId: id, merchantId: 'snacks', amountMinor: 500, currency: 'EUR', state: 'recorded', reference: null, timeMs: T0 });
    expect(clearing.transfers).toEqual([]);
    await closeHub(hub);

    hub = await openHub(dir, clearing, START_ONLY);
    await vi.waitFor(() => expect(hub.registry.payout(id)?.state).toBe('sent'), { timeout: 5000, interval: 10 });
    expect(clearing.transfers).toEqual([{ payoutId: id, merchantId: 'snacks', amountMinor: 500, currency: 'EUR' }]);
    expect(await balance(hub)).toBe(0);
    expect((await hub.verifyLedger()).ok).toBe(true);
  });

  it('resends a payout the clearing had already taken with the same id: the clearing pays it once', async () => {
    const dir = tempDir();
    const snapshot = join(tempDir(), 'registry');
    const clearing = new SimulatedClearing();
    let hub = await openHub(dir, clearing, NO_TIMER);
    await merchantWithSales(hub);
    await closeHub(hub);
    copyRegistry(dir, snapshot);
    hub = await openHub(dir, clearing, NO_TIMER);
    const sent = await hub.payout({ merchantId: 'snacks' });
    expect(sent).toMatchObject({ ok: true, payout: { state: 'sent' } });
    await closeHub(hub);
    copyRegistry(snapshot, dir); // a registry backup from before the payout restored

    hub = await openHub(dir, clearing, START_ONLY);
    const id = sent.ok ? sent.payout.payoutId : '';
    await vi.waitFor(() => expect(hub.registry.payout(id)?.state).toBe('sent'), { timeout: 5000, interval: 10 });
    expect(clearing.attempts).toBe(2);
    expect(clearing.transfers.map((t) => t.payoutId)).toEqual([id]);
    expect(hub.registry.payout(id)?.reference).toBe(sent.ok ? sent.payout.reference : 'x');
  });

  it('a registry write that fails after the ledger commit (no crash): the next timer round records and sends it', async () => {
    const dir = tempDir();
    const clearing = new SimulatedClearing();
    const hub = await openHub(dir, clearing, { intervalMs: 10 });
    await merchantWithSales(hub);
    const put = hub.registry.putPayout.bind(hub.registry);
    const spy = vi.spyOn(hub.registry, 'putPayout').mockImplementationOnce(() => {
      throw new Error('disk I/O error');
    });
    await expect(hub.payout({ merchantId: 'snacks' })).rejects.toThrow('disk I/O error');
    expect(await balance(hub)).toBe(0);
    spy.mockImplementation(put);
    await vi.waitFor(() => expect(clearing.transfers).toHaveLength(1), { timeout: 5000, interval: 10 });
    const [t] = clearing.transfers;
    await vi.waitFor(() => expect(hub.registry.payout(t?.payoutId ?? '')).toMatchObject({ state: 'sent', amountMinor: 500, merchantId: 'snacks' }), { timeout: 5000 });
  });
});

describe('payout retry settings', () => {
  it('refuses bad values as a typed InputError naming the field, before opening anything', async () => {
    const dir = join(tempDir(), 'hub');
    for (const [payoutRetry, field] of [
      [{ intervalMs: -1 }, 'payoutRetry.intervalMs'],
      [{ intervalMs: 1.5 }, 'payoutRetry.intervalMs'],
      [{ intervalMs: 60_000, maxIntervalMs: 1000 }, 'payoutRetry.maxIntervalMs'],
      [{ maxIntervalMs: 90_000_000 }, 'payoutRetry.maxIntervalMs'],
    ] as const) {
      const err = await createHub({ dataDir: dir, payoutRetry }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect(err).toMatchObject({ code: 'INVALID_INPUT', field });
    }
    expect(existsSync(dir)).toBe(false);
  });
});

describe('operator CLI', () => {
  it('payout: exit 3 and UNAVAILABLE when the clearing does not take it; payout retry sends it (running hub, then none)', async () => {
    const dir = tempDir();
    const clearing = new SimulatedClearing();
    const hub = await openHub(dir, clearing, NO_TIMER);
    await merchantWithSales(hub);
    const admin = await startAdminServer({ dataDir: dir, run: adminRunnerFor(hub), logger: pino({ level: 'silent' }) });
    expect(admin).toBeDefined();
    try {
      clearing.unavailable = true;
      const p = await cli(dir, 'payout', '--merchant', 'snacks');
      expect(p.code).toBe(EXIT_PENDING);
      const out = JSON.parse(p.stdout) as PayoutOutcome;
      const id = expectHeld(out);
      expect(p.stderr).toContain(`payout ${id} NOT SENT (UNAVAILABLE)`);
      expect(p.stderr).toContain('held in clearing');
      expect(p.stderr).toContain(`tapsettle payout retry --payout-id ${id}`);

      const still = await cli(dir, 'payout', 'retry');
      expect(still.code).toBe(EXIT_PENDING);
      expect(JSON.parse(still.stdout)).toMatchObject({ sent: [], failed: [{ payoutId: id, state: 'failed' }] });

      clearing.unavailable = false;
      const bad = await cli(dir, 'payout', 'retry', '--payout-id', 'XYZ');
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('payout-id');
      const ok = await cli(dir, 'payout', 'retry', '--payout-id', id);
      expect(ok.code).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ sent: [{ payoutId: id, state: 'sent', reference: `SIM-${id.slice(-12)}` }], failed: [] });
      expect(clearing.transfers.map((t) => t.payoutId)).toEqual([id]);
    } finally {
      await admin?.close();
    }
  }, 90_000); // four CLI processes

  it('payout retry on a stopped hub opens the folder, finds the lost record in the ledger and sends it', async () => {
    const dir = tempDir();
    const snapshot = join(tempDir(), 'registry');
    const clearing = new SimulatedClearing();
    let hub = await openHub(dir, clearing, NO_TIMER);
    await merchantWithSales(hub);
    await closeHub(hub);
    copyRegistry(dir, snapshot);
    hub = await openHub(dir, clearing, NO_TIMER);
    clearing.unavailable = true;
    const id = expectHeld(await hub.payout({ merchantId: 'snacks' }));
    await closeHub(hub);
    copyRegistry(snapshot, dir);

    // Its own process, its own (simulated) clearing: it sends and records the answer.
    const r = await cli(dir, 'payout', 'retry');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ sent: [{ payoutId: id, merchantId: 'snacks', amountMinor: 500, state: 'sent' }], failed: [] });
    const none = await cli(dir, 'payout', 'retry');
    expect(JSON.parse(none.stdout)).toEqual({ sent: [], failed: [] });
    expect(none.code).toBe(0);
  }, 90_000);
});
