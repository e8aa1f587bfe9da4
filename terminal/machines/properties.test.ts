// Property tests (fast-check): whatever the order of events — forged or foreign hub replies,
// pulled cards, timeouts, sensors — a vending machine vends and a POS prints only right after a
// hub-signed approval that verifies for the request in flight (online), and a dispensed receipt
// only follows a vend.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { verifyMessage } from '../../protocol/index.ts';
import { Fixture, T0 } from './fixtures.ts';
import { POS_IDLE, posStep, type PosEvent, type PosState } from './pos.ts';
import type { Command } from './types.ts';
import { VENDING_IDLE, vendingStep, type VendingEvent, type VendingState } from './vending.ts';
import { GATE_IDLE, gateStep, type GateEvent, type GateState } from './gate.ts';

type Action =
  | 'select' | 'select-unknown' | 'cancel' | 'tap' | 'authorized' | 'declined' | 'lost'
  | 'result-ok' | 'result-declined' | 'result-forged' | 'result-other' | 'result-foreign-terminal'
  | 'drop' | 'dispense-failed' | 'tick' | 'add' | 'checkout' | 'clear';

const ACTIONS: Action[] = ['select', 'select-unknown', 'cancel', 'tap', 'authorized', 'declined', 'lost', 'result-ok', 'result-declined', 'result-forged', 'result-other', 'result-foreign-terminal', 'drop', 'dispense-failed', 'tick', 'add', 'checkout', 'clear'];

const f = new Fixture();
const forger = new Fixture();
const w = f.wallet();
const spec = { purpose: 'purchase' as const, amountMinor: 250, currency: 'EUR', lines: [{ sku: 'cola', qty: 1, unitMinor: 250 }] };
const auth = f.authorize(w, spec);

function requestIdOf(state: { s: string } & Partial<{ requestId: string }>): string {
  return state.requestId ?? f.id();
}

function resultFor(a: Action, requestId: string) {
  switch (a) {
    case 'result-ok':
      return f.result(requestId);
    case 'result-declined':
      return f.result(requestId, { status: 'declined', code: 'INSUFFICIENT_FUNDS', withdrawal: 'none' });
    case 'result-forged':
      return f.result(requestId, {}, forger.hub);
    case 'result-other':
      return f.result(f.id());
    default:
      return f.result(requestId, { terminalId: 'someone-else' });
  }
}

function common(a: Action, state: { s: string }, nowMs: number): VendingEvent | PosEvent | null {
  switch (a) {
    case 'tap':
      return { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() };
    case 'authorized':
      return { e: 'wallet.authorized', authorization: auth };
    case 'declined':
      return { e: 'wallet.declined', code: 'BAD_SIGNATURE' };
    case 'lost':
      return { e: 'card.lost' };
    case 'tick':
      return { e: 'tick' };
    default:
      if (a.startsWith('result-')) return { e: 'hub.result', result: resultFor(a, requestIdOf(state as { s: string; requestId?: string })) };
      void nowMs;
      return null;
  }
}

function verifiedApproval(ev: VendingEvent | PosEvent, before: { s: string; requestId?: string }): boolean {
  if (ev.e !== 'hub.result' || before.s !== 'settling' || before.requestId === undefined) return false;
  // An oracle independent of the code under test: the protocol's verifier and the pinned key.
  const b = ev.result.body;
  return verifyMessage(ev.result, f.hubKey) && b.hubKey === f.hubKey && b.requestId === before.requestId && b.terminalId === f.terminalId && b.status === 'approved';
}

const reached = { vend: 0, print: 0 };

type StepT = { a: Action; dtMs: number };
/** Random sequences, and happy paths with random noise between their steps (so runs do reach the end). */
function sequences(happy: Action[], maxDtMs: number): fc.Arbitrary<StepT[]> {
  const step = fc.record({ a: fc.constantFrom(...ACTIONS), dtMs: fc.integer({ min: 0, max: maxDtMs }) });
  const noisyHappy = fc
    .tuple(...happy.map((a) => fc.tuple(fc.integer({ min: 0, max: maxDtMs }), fc.array(step, { maxLength: 2 })).map(([dtMs, noise]) => [{ a, dtMs: Math.floor(dtMs / 4) }, ...noise])))
    .map((parts) => parts.flat());
  return fc.oneof(fc.array(step, { maxLength: 40 }), noisyHappy);
}

describe('machine properties', () => {
  it('vending: vend only right after a verified approval for the request in flight; dispensed only after a vend', () => {
    fc.assert(
      fc.property(sequences(['select', 'tap', 'authorized', 'result-ok', 'drop'], 4000), (steps) => {
        let state: VendingState = VENDING_IDLE;
        let now = T0;
        let vended = false;
        const ctx = f.ctx();
        for (const { a, dtMs } of steps) {
          now += dtMs;
          const ev: VendingEvent | null =
            a === 'select' ? { e: 'select', sku: 'cola' } : a === 'select-unknown' ? { e: 'select', sku: 'nope' } : a === 'cancel' ? { e: 'cancel' } : a === 'drop' ? { e: 'drop' } : a === 'dispense-failed' ? { e: 'dispense.failed' } : (common(a, state, now) as VendingEvent | null);
          if (!ev) continue;
          const before = state;
          const r = vendingStep(state, ev, ctx, now);
          state = r.state;
          const kinds = r.commands.map((c: Command) => c.c);
          if (kinds.includes('vend')) {
            expect(verifiedApproval(ev, before as { s: string; requestId?: string })).toBe(true);
            vended = true;
            reached.vend += 1;
          }
          const receipt = r.commands.find((c): c is Extract<Command, { c: 'receipt' }> => c.c === 'receipt');
          if (receipt?.outcome === 'dispensed') {
            expect(vended).toBe(true);
            expect(before.s).toBe('dispensing');
            vended = false;
          }
          if (receipt?.outcome === 'failed') vended = false;
        }
      }),
      { numRuns: 300 },
    );
    expect(reached.vend).toBeGreaterThan(0); // the property was not vacuous
  });

  it('POS: prints only right after a verified approval for the request in flight', () => {
    fc.assert(
      fc.property(sequences(['add', 'checkout', 'tap', 'authorized', 'result-ok'], 20_000), (steps) => {
        let state: PosState = POS_IDLE;
        let now = T0;
        const ctx = f.ctx();
        for (const { a, dtMs } of steps) {
          now += dtMs;
          const ev: PosEvent | null =
            a === 'add' ? { e: 'item.add', sku: 'cola', qty: 1 } : a === 'checkout' ? { e: 'checkout' } : a === 'clear' ? { e: 'clear' } : (common(a, state, now) as PosEvent | null);
          if (!ev) continue;
          const before = state;
          const r = posStep(state, ev, ctx, now);
          state = r.state;
          if (r.commands.some((c) => c.c === 'print')) {
            expect(verifiedApproval(ev, before as { s: string; requestId?: string })).toBe(true);
            reached.print += 1;
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(reached.print).toBeGreaterThan(0);
  });
});

describe('gate properties', () => {
  const poor = f.wallet({ offlineLimitMinor: 0 });
  const fareAuth = f.authorize(poor, { purpose: 'fare', amountMinor: 600, currency: 'EUR', lines: [] });
  const GATE_ACTIONS = ['tap', 'authorized', 'declined', 'lost', 'result-ok', 'result-declined', 'result-forged', 'result-other', 'result-foreign-terminal', 'tick', 'passage', 'stored', 'statement'] as const;
  type G = (typeof GATE_ACTIONS)[number];

  function gateEvent(a: G, state: GateState): GateEvent {
    switch (a) {
      case 'tap':
        return { e: 'tap', card: f.card(poor, { statement: undefined }), requestId: f.id(), recordId: f.id() };
      case 'authorized':
        return { e: 'wallet.authorized', authorization: fareAuth };
      case 'declined':
        return { e: 'wallet.declined', code: 'BAD_SIGNATURE' };
      case 'lost':
        return { e: 'card.lost' };
      case 'tick':
        return { e: 'tick' };
      case 'passage':
        return { e: 'passage' };
      case 'stored':
        return { e: 'wallet.stored' };
      case 'statement':
        return { e: 'card.statement', statement: f.statement(poor.hex, 100) };
      default:
        return { e: 'hub.result', result: resultFor(a, 'requestId' in state ? state.requestId ?? f.id() : f.id()) };
    }
  }

  it('exit, fare the local policy cannot cover: the barrier opens only right after a verified hub approval', () => {
    const step = fc.record({ a: fc.constantFrom(...GATE_ACTIONS), dtMs: fc.integer({ min: 0, max: 3000 }) });
    const happy = fc
      .tuple(...(['tap', 'statement', 'authorized', 'result-ok'] as const).map((a) => fc.tuple(fc.constant(a), fc.array(step, { maxLength: 2 })).map(([x, noise]) => [{ a: x, dtMs: 0 }, ...noise])))
      .map((p) => p.flat());
    let opened = 0;
    fc.assert(
      fc.property(fc.oneof(fc.array(step, { maxLength: 40 }), happy), (steps) => {
        let state: GateState = GATE_IDLE;
        let now = T0;
        const ctx = f.ctx({ gate: { station: 'C', mode: 'exit' } });
        for (const { a, dtMs } of steps) {
          now += dtMs;
          const ev = gateEvent(a, state);
          const before = state;
          const r = gateStep(state, ev, ctx, now);
          state = r.state;
          if (r.commands.some((c) => c.c === 'gate.open')) {
            expect(verifiedApproval(ev as VendingEvent, { s: before.s === 'exit.settling' ? 'settling' : before.s, requestId: 'requestId' in before ? (before.requestId ?? undefined) : undefined })).toBe(true);
            opened += 1;
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(opened).toBeGreaterThan(0);
  });
});
