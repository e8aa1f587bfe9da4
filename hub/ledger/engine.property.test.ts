// Property: random sequences of purchases, holds, cancellations, refunds, top-ups, transfers,
// payouts, duplicate deliveries and crashes (including right after a log or withdraw commit)
// keep money conserved and settle each request id at most once; a hold given as a length ends
// that long after the command was logged, whenever its outcome is learned.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Engine, EngineHooks } from './engine.ts';
import type { SqliteLedgerStore } from './sqlite-store.ts';
import { manualClock, tempLedger, walletId } from './test-helpers.ts';
import type { Command, Outcome } from './types.ts';
import { verifyLedger } from './verify.ts';

const WALLETS = [walletId(1), walletId(2), walletId(3)];
const MERCHANTS = ['shop', 'mall', 'mall.cafe'];

type Op =
  | { t: 'topup'; w: number; amt: number }
  | { t: 'purchase'; w: number; m: number; amt: number; hold: Hold | null }
  | { t: 'offline'; w: number; m: number; amt: number; hold: Hold | null }
  | { t: 'transfer'; from: number; to: number; amt: number }
  | { t: 'payout'; m: number; amt: number }
  | { t: 'refund'; pick: number }
  | { t: 'dup'; pick: number; alter: boolean };

/** A cancellation window: an end (holdUntilMs, now + ms) or a length (holdMs: ms from the log time). */
type Hold = { ms: number; as: 'until' | 'length' };

type Step = { t: 'batch'; ops: Op[] } | { t: 'crash'; hook: EngineHooks['stopAfter'] | 'none' } | { t: 'time'; ms: number } | { t: 'release' };

const amt = fc.integer({ min: 1, max: 500 });
const idx3 = fc.integer({ min: 0, max: 2 });
const holdArb = fc.option(fc.record({ ms: fc.integer({ min: 1, max: 5000 }), as: fc.constantFrom('until' as const, 'length' as const) }), { nil: null });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('topup' as const), w: idx3, amt: fc.integer({ min: 1, max: 2000 }) }),
  fc.record({ t: fc.constant('purchase' as const), w: idx3, m: idx3, amt, hold: holdArb }),
  fc.record({ t: fc.constant('offline' as const), w: idx3, m: idx3, amt, hold: holdArb }),
  fc.record({ t: fc.constant('transfer' as const), from: idx3, to: idx3, amt }),
  fc.record({ t: fc.constant('payout' as const), m: idx3, amt }),
  fc.record({ t: fc.constant('refund' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('dup' as const), pick: fc.nat(), alter: fc.boolean() }),
);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('batch' as const), ops: fc.array(opArb, { minLength: 1, maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('crash' as const), hook: fc.constantFrom('none' as const, 'log' as const, 'withdraw' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('time' as const), ms: fc.integer({ min: 1, max: 4000 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('release' as const) }) },
);

describe.each(['full', 'pipelined', 'writer-thread'] as const)('engine properties (durability %s)', (mode) => {
  it('conserves money and settles each request id at most once, across duplicates and crashes', async () => {
    let counter = 0;
    const nextId = (): string => (++counter).toString(16).padStart(32, '0');
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 14 }), async (steps) => {
        const ledger = tempLedger(mode === 'writer-thread' ? { writerThread: true } : { durability: mode, writerThread: false });
        const clock = manualClock();
        // The pipelined and writer-thread runs also keep a tiny account cache, so eviction is exercised too.
        const cache = mode !== 'full' ? { maxCachedAccounts: 4 } : {};
        let engine: Engine = await ledger.openEngine({ clock: clock.now, ...cache });
        try {
          for (const w of WALLETS) await engine.openWallet(w, 'EUR');
          await engine.openMerchant('shop', { currency: 'EUR' });
          await engine.openMerchant('mall', { currency: 'EUR' });
          await engine.openMerchant('mall.cafe', { currency: 'EUR', parentId: 'mall', shareBps: 3333 });

          const sent: Command[] = [];
          const first = new Map<string, Outcome>();
          const unanswered = new Map<string, Command>();
          /** Altered copies sent under an existing id (a buggy or hostile terminal). */
          const altered = new Map<string, Command>();
          const purchases: string[] = [];
          /** The clock when each command was first sent: a length hold runs from its log time, not before. */
          const sentAt = new Map<string, number>();

          const holdFields = (hold: Hold | null): { holdUntilMs?: number; holdMs?: number } =>
            hold === null ? {} : hold.as === 'until' ? { holdUntilMs: clock.now() + hold.ms } : { holdMs: hold.ms };
          const deliver = async (cmds: Command[]): Promise<void> => {
            const mismatched: string[] = [];
            const results = await Promise.allSettled(cmds.map((c) => engine.submit(c)));
            results.forEach((r, i) => {
              const c = cmds[i] as Command;
              if (r.status === 'rejected') {
                expect(r.reason).toMatchObject({ code: 'engine_closed' });
                // Retry the original content (an altered duplicate is not what the terminal stored).
                if (!first.has(c.requestId) && !unanswered.has(c.requestId)) unanswered.set(c.requestId, c);
                return;
              }
              const prev = first.get(c.requestId);
              if (r.value.status === 'declined' && r.value.code === 'duplicate_mismatch') {
                // The original was lost in a crash before it was logged durably, and an altered copy
                // under its id reached the ledger first: that content is the request now (its
                // outcome is learned below), and this clear refusal is the retry's answer.
                if (altered.has(c.requestId) && !first.has(c.requestId)) mismatched.push(c.requestId);
                return;
              }
              // A replay changes nothing: the same id returns exactly the first outcome.
              if (prev) expect(r.value).toEqual(prev);
              else first.set(c.requestId, r.value);
              unanswered.delete(c.requestId);
            });
            for (const id of mismatched) {
              const [real] = await Promise.allSettled([engine.submit(altered.get(id) as Command)]);
              if (real?.status !== 'fulfilled' || (real.value.status === 'declined' && real.value.code === 'duplicate_mismatch')) continue;
              first.set(id, real.value);
              unanswered.delete(id);
            }
          };
          const reopen = async (hook: EngineHooks['stopAfter'] | 'none'): Promise<void> => {
            await engine.crashForTest();
            engine = await ledger.openEngine({ clock: clock.now, ...cache, ...(hook !== 'none' ? { hooks: { stopAfter: hook } } : {}) });
          };

          for (const step of steps) {
            if (step.t === 'crash') await reopen(step.hook);
            else if (step.t === 'time') clock.advance(step.ms);
            else if (step.t === 'release') await engine.releaseDueHolds().catch((e: unknown) => expect(e).toMatchObject({ code: 'engine_closed' }));
            else {
              const cmds: Command[] = [];
              for (const op of step.ops) {
                const requestId = nextId();
                let c: Command | null = null;
                switch (op.t) {
                  case 'topup':
                    c = { kind: 'topup', requestId, walletId: WALLETS[op.w] as string, amountMinor: op.amt, currency: 'EUR', source: 'cash' };
                    break;
                  case 'purchase':
                    c = {
                      kind: 'purchase',
                      requestId,
                      walletId: WALLETS[op.w] as string,
                      merchantId: MERCHANTS[op.m] as string,
                      amountMinor: op.amt,
                      currency: 'EUR',
                      ...holdFields(op.hold),
                    };
                    purchases.push(requestId);
                    break;
                  case 'offline':
                    c = { kind: 'offline_purchase', requestId, walletId: WALLETS[op.w] as string, merchantId: MERCHANTS[op.m] as string, amountMinor: op.amt, currency: 'EUR', ...holdFields(op.hold) };
                    purchases.push(requestId);
                    break;
                  case 'transfer':
                    c = { kind: 'transfer', requestId, fromWalletId: WALLETS[op.from] as string, toWalletId: WALLETS[op.to] as string, amountMinor: op.amt, currency: 'EUR' };
                    break;
                  case 'payout':
                    c = { kind: 'payout', requestId, merchantId: MERCHANTS[op.m] as string, amountMinor: op.amt, currency: 'EUR' };
                    break;
                  case 'refund':
                    if (purchases.length > 0) c = { kind: 'refund', requestId, originalRequestId: purchases[op.pick % purchases.length] as string };
                    break;
                  case 'dup': {
                    const orig = sent.length > 0 ? (sent[op.pick % sent.length] as Command) : null;
                    if (orig) c = op.alter ? { ...orig, memo: 'altered' } : { ...orig };
                    if (orig && op.alter && c) altered.set(orig.requestId, c);
                    break;
                  }
                }
                if (!c) continue;
                if (op.t !== 'dup') {
                  sent.push(c);
                  sentAt.set(c.requestId, clock.now());
                }
                cmds.push(c);
              }
              if (engine.store !== undefined) await deliver(cmds);
            }
          }
          // The terminals retry whatever got no answer (same request id), after a clean restart.
          await reopen('none');
          await deliver([...unanswered.values()]);
          expect(unanswered.size).toBe(0);
          await engine.flush();

          const report = await verifyLedger(engine.store);
          expect(report.firstDiscrepancy).toBeNull();
          const approved = (kind: Command['kind']): number =>
            sent.filter((c) => c.kind === kind && first.get(c.requestId)?.status === 'approved').reduce((s, c) => s + ('amountMinor' in c ? c.amountMinor : 0), 0);
          expect(report.currencies[0]?.issuedMinor ?? 0).toBe(approved('topup'));
          expect(report.currencies[0]?.redeemedMinor ?? 0).toBe(approved('payout'));
          expect(report.currencies[0]?.inTransitMinor ?? 0).toBe(0);

          // At most once: one log row per id, one withdrawal-type entry per log row, one refund per original.
          const db = (engine.store as SqliteLedgerStore).db;
          expect(db.prepare('SELECT COUNT(*) AS n FROM settlement_log').get()).toEqual({ n: new Set(sent.map((c) => c.requestId)).size });
          expect(db.prepare('SELECT seq, COUNT(*) AS n FROM journal_entries WHERE seq > 0 AND kind IN (0, 2, 4, 5, 6) GROUP BY seq HAVING n > 1').all()).toEqual([]);
          expect(db.prepare("SELECT seq, COUNT(*) AS n FROM journal_entries WHERE seq > 0 AND kind = 1 GROUP BY seq HAVING n > 1").all()).toEqual([]);
          // A length hold ends holdMs after the turn that logged it: not before it was sent, not after
          // the outcome was decided (a recovery decides later than it logged: the hold stays).
          for (const c of sent) {
            const o = first.get(c.requestId);
            if ((c.kind !== 'purchase' && c.kind !== 'offline_purchase') || c.holdMs === undefined || o?.status !== 'approved') continue;
            const loggedAt = (o.holdUntilMs ?? NaN) - c.holdMs;
            expect(loggedAt).toBeGreaterThanOrEqual(sentAt.get(c.requestId) as number);
            expect(loggedAt).toBeLessThanOrEqual(o.atMs);
          }
          const refunds = sent.filter((c): c is Extract<Command, { kind: 'refund' }> => c.kind === 'refund' && first.get(c.requestId)?.status === 'approved');
          expect(new Set(refunds.map((r) => r.originalRequestId)).size).toBe(refunds.length);
        } finally {
          await engine.crashForTest().catch(() => undefined);
          ledger.cleanup();
        }
      }),
      // Each reopen starts a writer thread (≈ 0.1–0.4 s on this shared VM): fewer runs keep it fast.
      { numRuns: mode === 'writer-thread' ? 12 : 30 },
    );
  });
});
