// Card top-ups through the real hub service and SQLite ledger: the card authorization is bound to
// what it authorized (amount, currency, wallet, card), and a card the ledger did not credit is
// given back (void). The authorizer is the simulator behind a recorder that can lose answers, as a
// network timeout does; what the cards are charged is read from the recorder and the simulator's
// approval list, so these tests say the same thing about any hub version.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { newRequestId, sealCard, type SealedCardT } from '../../protocol/index.ts';
import type { CardAuthorizationBinding, CardAuthorizationRequest, CardAuthorizer, CardVoidReason } from '../../hub/service/card-authorizer.ts';
import { LedgerError } from '../../hub/ledger/errors.ts';
import { createHub } from '../../hub/service/hub.ts';
import { failedBeforeHandOver } from '../../hub/service/settlement-service.ts';
import { CardAuthorizerSimulator, TEST_PAN_APPROVED, TEST_PAN_DECLINED } from '../../simulators/card-authorizer/card-authorizer-simulator.ts';
import { enroll, openHubFixture, readResult, register, runCli, runCliHere, signRequest, type HubFixture, type TestTerminal, type TestWallet } from './kit.ts';

/** The simulator as seen over a network: the first `lose.authorize` answers and `lose.void` acks are lost after the authorizer acted. */
class LossyAuthorizer implements CardAuthorizer {
  readonly sim = new CardAuthorizerSimulator();
  readonly sealingPublicKey = this.sim.sealingPublicKey;
  readonly authorizeCalls: CardAuthorizationRequest[] = [];
  /** Voids the authorizer received (acknowledged or not). */
  readonly voided: Array<{ requestId: string; reason: CardVoidReason }> = [];
  constructor(public lose: { authorize?: number; void?: number } = {}) {}
  /** Called after the authorizer approved, before the answer is returned (the hub then submits the credit). */
  onApproved: (() => void) | undefined;

  async authorize(request: CardAuthorizationRequest) {
    this.authorizeCalls.push(request);
    const answer = await this.sim.authorize(request);
    if (answer.approved) this.onApproved?.();
    if ((this.lose.authorize ?? 0) > 0) {
      this.lose = { ...this.lose, authorize: (this.lose.authorize ?? 0) - 1 };
      throw Object.assign(new Error('ETIMEDOUT'), { code: 'ETIMEDOUT' });
    }
    return answer;
  }

  async void(binding: CardAuthorizationBinding, reason: CardVoidReason) {
    if ((this.lose.void ?? 0) > 0) {
      // Lost on the way: the authorizer never hears of it.
      this.lose = { ...this.lose, void: (this.lose.void ?? 0) - 1 };
      throw Object.assign(new Error('ECONNRESET'), { code: 'ECONNRESET' });
    }
    await this.sim.void(binding, reason);
    this.voided.push({ requestId: binding.requestId, reason });
  }

  /** Approved and not voided, per request id: what the cards are charged. */
  charged(): Record<string, number> {
    const voided = new Set(this.voided.map((v) => v.requestId));
    return Object.fromEntries(this.sim.approvals.filter((a) => !voided.has(a.requestId)).map((a) => [a.requestId, a.amountMinor]));
  }
}

let fx: HubFixture | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await fx?.cleanup();
  fx = undefined;
});

async function setup(authorizer: LossyAuthorizer, options: Parameters<typeof openHubFixture>[0] = {}) {
  fx = await openHubFixture({ cardAuthorizer: authorizer, ...options });
  const pos = await enroll(fx.hub, 'pos-1', 'pos', 'cafe');
  const w1 = await register(fx.hub);
  const w2 = await register(fx.hub);
  return { fx, pos, w1, w2 };
}

function cardTopup(f: HubFixture, pos: TestTerminal, wallet: TestWallet, amountMinor: number, requestId: string, sealedCard: SealedCardT) {
  return signRequest(pos, { type: 'topup', wallet: wallet.id, amountMinor, currency: 'EUR', method: 'card', sealedCard }, f.now, { requestId });
}

async function balance(f: HubFixture, w: TestWallet): Promise<number | undefined> {
  return (await f.hub.showAccount(w.id))?.account.balanceMinor;
}

describe('card top-up', () => {
  it('a hub given no card authorizer refuses card top-ups (NOT_PERMITTED) and credits nothing: no simulator stands in unasked', async () => {
    fx = await openHubFixture();
    const pos = await enroll(fx.hub, 'pos-1', 'pos', 'cafe');
    const w = await register(fx.hub);
    const requestId = newRequestId(fx.now);
    const anyKey = new CardAuthorizerSimulator().sealingPublicKey;
    const req = cardTopup(fx, pos, w, 2000, requestId, sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, anyKey, requestId));
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, req.bytes))).toMatchObject({ status: 'declined', code: 'NOT_PERMITTED' });
    expect(await balance(fx, w)).toBe(0);
  });

  it('normal path: approved, credited once, charged once; a retry gets the same bytes and charges nothing more', async () => {
    const auth = new LossyAuthorizer();
    const { fx: f, pos, w1 } = await setup(auth);
    const requestId = newRequestId(f.now);
    const req = cardTopup(f, pos, w1, 2000, requestId, sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, auth.sealingPublicKey, requestId));
    const first = await f.hub.handleRequest(pos.id, req.bytes);
    expect(readResult(f.hub, first)).toMatchObject({ status: 'approved', amountMinor: 2000, withdrawal: 'complete' });
    expect(Buffer.from(await f.hub.handleRequest(pos.id, req.bytes)).equals(Buffer.from(first))).toBe(true);
    expect(await balance(f, w1)).toBe(2000);
    expect(auth.charged()).toEqual({ [requestId]: 2000 });
    expect(auth.voided).toEqual([]);
    // The authorizer is told what it authorizes: amount, currency and the wallet credited.
    expect(auth.authorizeCalls[0]).toMatchObject({ requestId, amountMinor: 2000, currency: 'EUR', wallet: w1.id });
  });

  it('the same request id with a larger amount and another wallet after a lost authorizer answer is refused and credits nothing', async () => {
    // The first answer is lost after the card was charged; the hub's timeout reversal is lost too.
    const auth = new LossyAuthorizer({ authorize: 1, void: 1 });
    const { fx: f, pos, w1, w2 } = await setup(auth);
    const requestId = newRequestId(f.now);
    const sealedCard = sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, auth.sealingPublicKey, requestId);
    const original = cardTopup(f, pos, w1, 1000, requestId, sealedCard);
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, original.bytes))).toMatchObject({ status: 'declined', code: 'INTERNAL' });

    const forged = cardTopup(f, pos, w2, 900_000, requestId, sealedCard);
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, forged.bytes))).toMatchObject({ status: 'declined', code: 'DUPLICATE_MISMATCH', amountMinor: 0 });
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, forged.bytes)).code).toBe('DUPLICATE_MISMATCH');
    expect([await balance(f, w1), await balance(f, w2)]).toEqual([0, 0]);
    expect(auth.sim.approvals.map((a) => a.amountMinor)).toEqual([1000]);

    // The refusal was not stored under the id, and did not void the card: the original's own
    // retry gets its approval replayed and the ledger credits what the card was charged.
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, original.bytes))).toMatchObject({ status: 'approved', amountMinor: 1000 });
    expect([await balance(f, w1), await balance(f, w2)]).toEqual([1000, 0]);
    expect(auth.charged()).toEqual({ [requestId]: 1000 });
  });

  it('a lost authorizer answer is voided (timeout reversal): the retry is declined, nothing charged, nothing credited', async () => {
    const auth = new LossyAuthorizer({ authorize: 1 });
    const { fx: f, pos, w1, w2 } = await setup(auth);
    const requestId = newRequestId(f.now);
    const sealedCard = sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, auth.sealingPublicKey, requestId);
    const original = cardTopup(f, pos, w1, 1000, requestId, sealedCard);
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, original.bytes)).code).toBe('INTERNAL');
    expect(auth.voided).toEqual([{ requestId, reason: 'no_answer' }]);
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, original.bytes)).code).toBe('CARD_DECLINED');
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, cardTopup(f, pos, w2, 900_000, requestId, sealedCard).bytes)).code).toBe('DUPLICATE_MISMATCH');
    expect([await balance(f, w1), await balance(f, w2)]).toEqual([0, 0]);
    expect(auth.charged()).toEqual({});
  });

  it('the ledger refusing the credit after the card was approved voids the card (real ledger balance limit)', async () => {
    const auth = new LossyAuthorizer();
    const { fx: f, pos, w1 } = await setup(auth);
    // A wallet one euro short of the ledger's balance limit (Number.MAX_SAFE_INTEGER).
    const near = Number.MAX_SAFE_INTEGER - 500;
    expect((await f.hub.engine.submit({ kind: 'topup', requestId: newRequestId(f.now).slice(0, 32), walletId: w1.id, amountMinor: near, currency: 'EUR', source: 'cash' })).status).toBe(
      'approved',
    );
    const requestId = newRequestId(f.now);
    const req = cardTopup(f, pos, w1, 1000, requestId, sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, auth.sealingPublicKey, requestId));
    const r = readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes));
    expect(r).toMatchObject({ status: 'declined', code: 'AMOUNT_INVALID' });
    expect(auth.sim.approvals.map((a) => a.requestId)).toEqual([requestId]);
    expect(auth.voided).toEqual([{ requestId, reason: 'ledger_declined' }]);
    expect(auth.charged()).toEqual({});
    expect(await balance(f, w1)).toBe(near);
    // A retry is answered from the stored decline: no second authorization, no second void.
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes))).toEqual(r);
    expect([auth.sim.approvals.length, auth.voided.length]).toEqual([1, 1]);
  });

  it('the ledger failing before it logged the credit voids the card; the retry is declined and credits nothing', async () => {
    const auth = new LossyAuthorizer();
    const { fx: f, pos, w1 } = await setup(auth);
    vi.spyOn(f.hub.engine, 'submit').mockRejectedValueOnce(new LedgerError('queue_full', 'test'));
    const requestId = newRequestId(f.now);
    const req = cardTopup(f, pos, w1, 1000, requestId, sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, auth.sealingPublicKey, requestId));
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes)).code).toBe('UNAVAILABLE');
    expect(auth.voided).toEqual([{ requestId, reason: 'ledger_failed' }]);
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes)).code).toBe('CARD_DECLINED');
    expect(await balance(f, w1)).toBe(0);
    expect(auth.charged()).toEqual({});
  });

  it('a ledger that logged the credit before failing is not voided: its recovery credits what the card was charged', async () => {
    const auth = new LossyAuthorizer();
    // The engine commits the next batch's log rows and stops (a crash after the log write).
    const { fx: f, pos, w1 } = await setup(auth, { engine: { hooks: { stopAfter: 'log' } } });
    const requestId = newRequestId(f.now);
    const req = cardTopup(f, pos, w1, 1000, requestId, sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, auth.sealingPublicKey, requestId));
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes)).code).toBe('UNAVAILABLE');
    expect(auth.voided).toEqual([]);
    // Restart without the hook, same authorizer (an acquirer outlives the hub).
    await f.hub.close();
    const hub = await createHub({ dataDir: f.dir, clock: () => f.now, holdReleaseIntervalMs: 0, cardAuthorizer: auth });
    (f as { hub: typeof hub }).hub = hub;
    expect(readResult(hub, await hub.handleRequest(pos.id, req.bytes))).toMatchObject({ status: 'approved', amountMinor: 1000 });
    expect(await balance(f, w1)).toBe(1000);
    expect(auth.charged()).toEqual({ [requestId]: 1000 });
  });
});

/**
 * The ledger's fault: its next journal entry id is taken from a second connection, so the commit
 * that carries the card credit fails inside SQLite after the engine took the command, as a commit
 * whose fsync fails does (EIO, disk full): the engine reports store_failed and its connection sees
 * no row. (Whether SQLite's recovery then keeps the frames is for the next open to say; here it
 * does not, and the stand-in row is removed by `undo` before anything else commits.)
 */
function takeNextEntryId(ledgerFile: string): { undo: () => void } {
  const side = new Database(ledgerFile);
  const next = (side.prepare('SELECT COALESCE(MAX(id), 0) AS m FROM journal_entries').get() as { m: number }).m + 1;
  side.prepare("INSERT INTO journal_entries (id, seq, kind, currency, at_ms) VALUES (?, 0, 0, 'EUR', 0)").run(next);
  side.close();
  return {
    undo: () => {
      const db = new Database(ledgerFile);
      db.prepare('DELETE FROM journal_entries WHERE id = ?').run(next);
      db.close();
    },
  };
}

describe('card top-up, the ledger failing after it took the credit (a commit or its fsync failed)', () => {
  it('writer thread: not voided, answered UNAVAILABLE, its retry neither; after the restart the retry is credited what the card was charged', async () => {
    const auth = new LossyAuthorizer();
    const { fx: f, pos, w1, w2 } = await setup(auth);
    await f.hub.engine.flush();
    const fault = takeNextEntryId(join(f.dir, 'ledger.sqlite'));
    // Four cash credits in the same turn as the card's: five rows go to the writer thread (one
    // would commit on the engine's thread), whose transaction fails; the engine stops.
    const fillers: Array<Promise<unknown>> = [];
    auth.onApproved = () => {
      auth.onApproved = undefined;
      for (let i = 0; i < 4; i++) fillers.push(f.hub.engine.submit({ kind: 'topup', requestId: newRequestId(f.now).slice(0, 32), walletId: w2.id, amountMinor: 1, currency: 'EUR', source: 'cash' }));
    };
    const requestId = newRequestId(f.now);
    const req = cardTopup(f, pos, w1, 1000, requestId, sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, auth.sealingPublicKey, requestId));
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes))).toMatchObject({ status: 'declined', code: 'UNAVAILABLE' });
    expect((await Promise.allSettled(fillers)).map((r) => (r.status === 'rejected' ? (r.reason as LedgerError).code : r.status))).toEqual(Array(4).fill('store_failed'));
    expect(auth.voided).toEqual([]);
    // The same process again (its engine stopped: engine_closed, before any hand-over): still
    // "ask again", still not voided — the first attempt's frames may be in the WAL.
    expect(readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes)).code).toBe('UNAVAILABLE');
    expect(auth.voided).toEqual([]);
    expect(auth.charged()).toEqual({ [requestId]: 1000 });

    await f.hub.close();
    fault.undo();
    const hub = await createHub({ dataDir: f.dir, clock: () => f.now, holdReleaseIntervalMs: 0, cardAuthorizer: auth });
    (f as { hub: typeof hub }).hub = hub;
    expect(readResult(hub, await hub.handleRequest(pos.id, req.bytes))).toMatchObject({ status: 'approved', amountMinor: 1000 });
    expect(await balance(f, w1)).toBe(1000);
    expect(auth.charged()).toEqual({ [requestId]: 1000 });
    expect(auth.voided).toEqual([]);
  });

  it("the engine's own thread: not voided, and no later failure of its retries voids it (a lost authorizer answer, a full queue); once the ledger takes it, credited", async () => {
    const auth = new LossyAuthorizer();
    const { fx: f, pos, w1 } = await setup(auth);
    await f.hub.engine.flush();
    await new Promise((r) => setTimeout(r, 20)); // quiet: the one-row batch commits on the engine's thread
    const fault = takeNextEntryId(join(f.dir, 'ledger.sqlite'));
    const requestId = newRequestId(f.now);
    const req = cardTopup(f, pos, w1, 1000, requestId, sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, auth.sealingPublicKey, requestId));
    const ask = async () => readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes)).code;
    expect(await ask()).toBe('UNAVAILABLE');
    expect(auth.voided).toEqual([]);
    fault.undo();
    // Retries that fail before the ledger takes them: the first attempt may still be in the WAL.
    auth.lose = { authorize: 1 };
    expect(await ask()).toBe('INTERNAL');
    vi.spyOn(f.hub.engine, 'submit').mockRejectedValueOnce(new LedgerError('queue_full', 'test'));
    expect(await ask()).toBe('UNAVAILABLE');
    expect(auth.voided).toEqual([]);
    // The ledger takes it: credited once, what the card was charged.
    const approved = readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes));
    expect(approved).toMatchObject({ status: 'approved', amountMinor: 1000 });
    expect(await balance(f, w1)).toBe(1000);
    expect(auth.charged()).toEqual({ [requestId]: 1000 });
    expect(auth.voided).toEqual([]);
  });
});

describe('card top-ups reconciled with the acquirer (`reconcile-cards`, the operator CLI as a child process)', () => {
  type Reconciliation = {
    ok: boolean;
    matched: { count: number; totalsMinor: Record<string, number> };
    chargedNotCredited: Array<{ charge: { requestId: string }; ledger: unknown }>;
    creditedNotCharged: Array<{ ledgerRequestId: string; wallet: string; amountMinor: number }>;
    mismatched: Array<{ charge: { requestId: string }; fields: string[] }>;
    duplicateCharges: Array<{ requestId: string }>;
  };

  it("finds the charge whose reversal was lost, and every way the acquirer's report can disagree with the ledger", async () => {
    // The first authorization's answer is lost after the card was charged, and so is the hub's reversal.
    const auth = new LossyAuthorizer({ authorize: 1, void: 1 });
    const { fx: f, pos, w1, w2 } = await setup(auth);
    const top = async (w: TestWallet, amountMinor: number, pan = TEST_PAN_APPROVED) => {
      const requestId = newRequestId(f.now);
      const req = cardTopup(f, pos, w, amountMinor, requestId, sealCard({ pan, expiry: '12/30' }, auth.sealingPublicKey, requestId));
      return { requestId, result: readResult(f.hub, await f.hub.handleRequest(pos.id, req.bytes)) };
    };
    const lost = await top(w1, 900);
    expect(lost.result.code).toBe('INTERNAL');
    const [a, b, c] = [await top(w1, 2000), await top(w2, 1500), await top(w1, 500)];
    expect((await top(w2, 700, TEST_PAN_DECLINED)).result.code).toBe('CARD_DECLINED'); // neither charged nor credited
    const report = auth.sim.settlementReport();
    expect(report.charges.map((ch) => ch.requestId)).toEqual([lost.requestId, a.requestId, b.requestId, c.requestId]);

    const file = (name: string, value: unknown) => {
      const path = join(f.dir, name);
      writeFileSync(path, JSON.stringify(value));
      return path;
    };
    const period = ['--from', '2026-11-23', '--to', '2026-11-24T00:00:00Z'];
    const reconcile = async (path: string) => {
      const r = await runCli(f.dir, ['reconcile-cards', '--report', path, ...period]);
      return { code: r.code, stderr: r.stderr, out: r.code === 2 ? undefined : (JSON.parse(r.stdout) as Reconciliation) };
    };
    const without = (ids: string[]) => report.charges.filter((ch) => !ids.includes(ch.requestId));
    const [asReported, lostAside, tampered] = await Promise.all([
      reconcile(file('acquirer.json', report)),
      reconcile(file('acquirer-reversed.json', { charges: without([lost.requestId]) })),
      reconcile(file('acquirer-tampered.json', { charges: [...without([lost.requestId, b.requestId, c.requestId]), { ...report.charges[3]!, amountMinor: 600 }, report.charges[1]!] })),
    ]);

    // The acquirer's own report: the lost reversal's charge is there, and no wallet has its money.
    expect(asReported.code).toBe(1);
    expect(asReported.stderr).toContain('1 charged but not credited');
    expect(asReported.out).toMatchObject({ ok: false, matched: { count: 3, totalsMinor: { EUR: 4000 } }, creditedNotCharged: [], mismatched: [], duplicateCharges: [] });
    expect(asReported.out?.chargedNotCredited).toEqual([{ charge: report.charges[0], ledger: null }]);
    // Once the operator has reversed it at the acquirer, its next report matches the ledger.
    expect(lostAside.code).toBe(0);
    expect(lostAside.out).toMatchObject({ ok: true, matched: { count: 3, totalsMinor: { EUR: 4000 } } });
    // A report that dropped b, changed c's amount and lists a twice.
    expect(tampered.code).toBe(1);
    expect(tampered.out?.creditedNotCharged).toMatchObject([{ ledgerRequestId: b.requestId, wallet: w2.id, amountMinor: 1500 }]);
    expect(tampered.out?.mismatched).toMatchObject([{ charge: { requestId: c.requestId }, fields: ['amountMinor'] }]);
    expect(tampered.out?.duplicateCharges).toMatchObject([{ requestId: a.requestId }]);
    expect(tampered.out?.matched.count).toBe(1);
  });

  it('bad input: exit 2 naming the field, before the ledger is opened (the CLI in this process)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-reconcile-'));
    const cli = (...args: string[]) => runCliHere(join(dir, 'hub'), args, dir);
    try {
      const good = { charges: [{ requestId: '0'.repeat(32), amountMinor: 100, currency: 'EUR' }] };
      writeFileSync(join(dir, 'ok.json'), JSON.stringify(good));
      writeFileSync(join(dir, 'float.json'), JSON.stringify({ charges: [{ ...good.charges[0], amountMinor: 12.5 }] }));
      writeFileSync(join(dir, 'broken.json'), '{"charges": [');
      const day = ['--from', '2026-11-23', '--to', '2026-11-24'];
      const cases: Array<[string[], string]> = [
        [['--report', 'float.json', ...day], 'invalid charges.0.amountMinor'],
        [['--report', 'broken.json', ...day], 'broken.json is not JSON'],
        [['--report', 'missing.json', ...day], 'invalid report: cannot read missing.json: ENOENT'],
        [['--report', 'ok.json', '--from', 'yesterday', '--to', '2026-11-24'], 'invalid from: expected an ISO 8601 date'],
        // Dates Date.parse would roll over into the next month or day.
        [['--report', 'ok.json', '--from', '2026-02-31', '--to', '2026-11-24'], 'invalid from: expected an ISO 8601 date'],
        [['--report', 'ok.json', '--from', '2026-11-23T24:00Z', '--to', '2026-11-24T12:00Z'], 'invalid from: expected an ISO 8601 date'],
        // A time without a zone is ambiguous.
        [['--report', 'ok.json', '--from', '2026-11-23T10:00:00', '--to', '2026-11-24'], 'invalid from: expected an ISO 8601 date'],
        [['--report', 'ok.json', '--from', '2026-11-24', '--to', '2026-11-23'], 'invalid to: the period must end after it starts'],
        // A valid report and period on a folder without a ledger: the folder is named.
        [['--report', 'ok.json', ...day], 'invalid data-dir: no ledger at'],
      ];
      for (const [args, message] of cases) {
        const r = await cli('reconcile-cards', ...args);
        expect([args, r.code, r.stderr]).toEqual([args, 2, expect.stringContaining(message)]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('which ledger failures leave nothing written (a card top-up is voided only after one of them)', () => {
  it('refused before the engine took it, or before its batch was written: voidable; a failed commit or fsync: may be in the WAL', () => {
    for (const code of ['queue_full', 'engine_closed', 'not_committed'] as const) expect(failedBeforeHandOver(new LedgerError(code, 'x'))).toBe(true);
    expect(failedBeforeHandOver(new LedgerError('store_failed', 'the commit failed before it was durable'))).toBe(false);
    expect(failedBeforeHandOver(new Error('anything else'))).toBe(false);
  });
});
