import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../protocol/index.ts';
import { Fixture, T0 } from './fixtures.ts';
import { display, FOREIGN_SIGNATURE_TEXT, HUB_BUSY_TEXT, type Command } from './types.ts';
import { DEVICE_VERDICT_GRACE_MS, DISPENSER_NOT_READY_TEXT, SLOT_OUT_OF_ORDER_AFTER, VENDING_IDLE, vendingStep, type VendingEvent, type VendingState } from './vending.ts';

const kinds = (cs: Command[]): string[] => cs.map((c) => c.c);

function run(f: Fixture, events: VendingEvent[], ctx = f.ctx(), start: VendingState = VENDING_IDLE, nowMs = T0): { state: VendingState; commands: Command[] } {
  let state = start;
  const commands: Command[] = [];
  for (const ev of events) {
    const r = vendingStep(state, ev, ctx, nowMs);
    state = r.state;
    commands.push(...r.commands);
  }
  return { state, commands };
}

describe('vending machine', () => {
  it('select → tap → authorize → verified approval → vend → drop → dispensed receipt', () => {
    const f = new Fixture();
    const w = f.wallet();
    const rid = f.id();
    let r = run(f, [{ e: 'select', sku: 'cola' }, { e: 'tap', card: f.card(w), requestId: rid, recordId: f.id() }]);
    expect(r.state.s).toBe('authorizing');
    const auth = r.commands.find((c) => c.c === 'nfc.authorize');
    expect(auth).toMatchObject({ offer: { purpose: 'purchase', amountMinor: 250, lines: [{ sku: 'cola', qty: 1, unitMinor: 250 }] } });
    r = run(f, [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'purchase', amountMinor: 250, currency: 'EUR', lines: [{ sku: 'cola', qty: 1, unitMinor: 250 }] }) }], f.ctx(), r.state);
    expect(r.state.s).toBe('settling');
    expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ requestId: rid, offline: false, amountMinor: 250, op: { type: 'purchase', catalogVersion: 7 } });
    expect(kinds(r.commands)).not.toContain('vend');
    const st = f.statement(w.hex, 750);
    r = run(f, [{ e: 'hub.result', result: f.result(rid, { statement: st }) }], f.ctx(), r.state);
    expect(r.state.s).toBe('dispensing');
    expect(r.commands).toContainEqual({ c: 'vend', slot: 3, requestId: rid });
    expect(r.commands).toContainEqual({ c: 'nfc.store', kind: 'BalanceStatement', message: st, replace: true });
    r = run(f, [{ e: 'drop' }], f.ctx(), r.state);
    expect(r.state.s).toBe('idle');
    expect(r.commands).toContainEqual({ c: 'receipt', requestId: rid, outcome: 'dispensed' });
  });

  it('refuses to select an article on a slot the machine does not have: nothing asked of the wallet, nothing charged', () => {
    const f = new Fixture();
    const ctx = f.ctx({ vending: { slotCount: 4 } }); // slots 0..3: cola is on 3, beer on 4
    const refused = run(f, [{ e: 'select', sku: 'beer' }], ctx);
    expect(refused.state).toEqual(VENDING_IDLE);
    expect(refused.commands).toEqual([display('Beer: not available at this machine — choose another', 'error')]);
    // A tap after it starts nothing.
    const tapped = run(f, [{ e: 'select', sku: 'beer' }, { e: 'tap', card: f.card(f.wallet({ ageOver: 30 })), requestId: f.id(), recordId: f.id() }], ctx);
    expect(kinds(tapped.commands)).not.toContain('nfc.authorize');
    // The machine's own slots sell; a refused choice leaves a selection made before as it was.
    const cola = run(f, [{ e: 'select', sku: 'cola' }], ctx);
    expect(cola.state.s).toBe('selected');
    expect(run(f, [{ e: 'select', sku: 'beer' }], ctx, cola.state).state).toEqual(cola.state);
  });

  it('never vends on a result signed by an untrusted key, for another request, or for another terminal', () => {
    const f = new Fixture();
    const rid = f.id();
    const settling: VendingState = { s: 'settling', article: f.ctx().catalog[0]!, requestId: rid, untilMs: T0 + 3000 };
    const forged = f.result(rid, { hubKey: f.hubKey }, generateKeyPair()); // claims the hub key, signed by another
    const tampered = { ...f.result(rid), body: { ...f.result(rid).body, amountMinor: 1 } };
    const other = f.result(f.id());
    const foreign = f.result(rid, { terminalId: 'term-2' });
    for (const result of [forged, tampered, other, foreign]) {
      const r = vendingStep(settling, { e: 'hub.result', result }, f.ctx(), T0);
      expect(r.state).toEqual(settling);
      expect(kinds(r.commands)).not.toContain('vend');
    }
  });

  it('a declined result vends nothing and still stores the statement', () => {
    const f = new Fixture();
    const rid = f.id();
    const settling: VendingState = { s: 'settling', article: f.ctx().catalog[0]!, requestId: rid, untilMs: T0 + 3000 };
    const r = vendingStep(settling, { e: 'hub.result', result: f.result(rid, { status: 'declined', code: 'INSUFFICIENT_FUNDS', withdrawal: 'none', statement: f.statement(f.wallet().hex, 10) }) }, f.ctx(), T0);
    expect(r.state.s).toBe('idle');
    expect(kinds(r.commands)).not.toContain('vend');
    expect(kinds(r.commands)).toContain('nfc.store');
  });

  it('no drop within the timeout sends a failure receipt (the hub refunds)', () => {
    const f = new Fixture();
    const rid = f.id();
    const s: VendingState = { s: 'dispensing', article: f.ctx().catalog[0]!, requestId: rid, untilMs: T0 + 2000 };
    expect(vendingStep(s, { e: 'tick' }, f.ctx(), T0 + 1999).state).toEqual(s);
    const r = vendingStep(s, { e: 'tick' }, f.ctx(), T0 + 2000);
    expect(r.state.s).toBe('idle');
    expect(r.commands).toContainEqual({ c: 'receipt', requestId: rid, outcome: 'failed', reason: 'no drop detected' });
    // The dispenser's own verdict (dispense.failed) gives the same failure receipt, before the backstop.
    const failed = vendingStep(s, { e: 'dispense.failed' }, f.ctx(), T0 + 10);
    expect(failed.commands).toContainEqual({ c: 'receipt', requestId: rid, outcome: 'failed', reason: 'no drop detected' });
  });

  it('a failed vend is counted against its slot; a slot out of order refuses its articles at selection until reset, the others sell', () => {
    const f = new Fixture();
    const rid = f.id();
    const s: VendingState = { s: 'dispensing', article: f.ctx().catalog[0]!, requestId: rid, untilMs: T0 + 2000 }; // cola, slot 3
    expect(vendingStep(s, { e: 'dispense.failed', reason: 'no-drop' }, f.ctx(), T0 + 10).commands).toContainEqual({ c: 'slot.failed', slot: 3, requestId: rid, reason: 'no-drop' });
    // A drop sensor that went blocked before the motor: refunded, and not the slot's fault.
    const blocked = vendingStep(s, { e: 'dispense.failed', reason: 'drop-sensor-blocked' }, f.ctx(), T0 + 10).commands;
    expect(blocked).toContainEqual({ c: 'receipt', requestId: rid, outcome: 'failed', reason: 'drop sensor blocked' });
    expect(kinds(blocked)).not.toContain('slot.failed');
    // Nor a board lost mid-dispense (the terminal restarts on it), nor a slot the dispenser does not have.
    for (const reason of ['ACTUATOR_LINK_LOST', 'VENDING_SLOT_UNKNOWN']) {
      const failed = vendingStep(s, { e: 'dispense.failed', reason }, f.ctx(), T0 + 10).commands;
      expect(failed).toContainEqual({ c: 'receipt', requestId: rid, outcome: 'failed', reason: 'no drop detected' });
      expect(kinds(failed)).not.toContain('slot.failed');
    }
    expect(vendingStep(s, { e: 'tick' }, f.ctx(), T0 + 2000).commands).toContainEqual({ c: 'slot.failed', slot: 3, requestId: rid, reason: 'no answer from the dispenser' });
    // A drop counts nothing.
    expect(kinds(vendingStep(s, { e: 'drop' }, f.ctx(), T0 + 10).commands)).not.toContain('slot.failed');

    const failures = new Map<number, number>();
    const ctx = () => f.ctx({ vending: { slotCount: 8, slotFailures: (slot) => failures.get(slot) ?? 0 } });
    expect(run(f, [{ e: 'select', sku: 'cola' }], ctx()).state.s).toBe('selected');
    failures.set(3, SLOT_OUT_OF_ORDER_AFTER);
    const refused = run(f, [{ e: 'select', sku: 'cola' }], ctx());
    expect(refused.state).toEqual(VENDING_IDLE);
    expect(refused.commands).toEqual([display('Cola: out of order — choose another', 'error')]);
    expect(run(f, [{ e: 'select', sku: 'beer' }], ctx()).state.s).toBe('selected'); // slot 4
    failures.delete(3); // the operator's reset
    expect(run(f, [{ e: 'select', sku: 'cola' }], ctx()).state.s).toBe('selected');
  });

  it('a dispenser that is not ready (drop sensor blocked, board gone) starts no sale: refused at selection and at the tap', () => {
    const f = new Fixture();
    const w = f.wallet();
    let ready = true;
    const ctx = () => f.ctx({ vending: { slotCount: 8, ready: () => ready } });
    const selected = run(f, [{ e: 'select', sku: 'cola' }], ctx());
    expect(selected.state.s).toBe('selected');
    ready = false;
    const atTap = run(f, [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }], ctx(), selected.state);
    expect(atTap.state).toEqual(VENDING_IDLE);
    expect(atTap.commands).toEqual([display(DISPENSER_NOT_READY_TEXT, 'error'), { c: 'nfc.release' }]);
    const atSelect = run(f, [{ e: 'select', sku: 'cola' }], ctx());
    expect(atSelect.state).toEqual(VENDING_IDLE);
    expect(atSelect.commands).toEqual([display(DISPENSER_NOT_READY_TEXT, 'error')]);
    ready = true; // the beam reads clear again: sales go on, no operator reset needed
    expect(run(f, [{ e: 'select', sku: 'cola' }, { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }], ctx()).state.s).toBe('authorizing');
  });

  it("the machine's deadline leaves the dispenser its whole window: a drop late in it is a sale, not a refund", () => {
    const f = new Fixture();
    const rid = f.id();
    const approved = vendingStep({ s: 'settling', article: f.ctx().catalog[0]!, requestId: rid, untilMs: T0 + 3000 }, { e: 'hub.result', result: f.result(rid) }, f.ctx(), T0);
    expect(approved.state).toMatchObject({ s: 'dispensing', untilMs: T0 + f.ctx().timeouts.dropMs + DEVICE_VERDICT_GRACE_MS });
    // The motor started late (the durable write, a queued motor): the drop comes after dropMs.
    const late = T0 + f.ctx().timeouts.dropMs + 500;
    expect(vendingStep(approved.state, { e: 'tick' }, f.ctx(), late).state).toEqual(approved.state);
    const dropped = vendingStep(approved.state, { e: 'drop' }, f.ctx(), late);
    expect(dropped.commands).toContainEqual({ c: 'receipt', requestId: rid, outcome: 'dispensed' });
  });

  it('hub silent past the deadline: abandon (a late approval is reversed), no vend', () => {
    const f = new Fixture();
    const rid = f.id();
    const s: VendingState = { s: 'settling', article: f.ctx().catalog[0]!, requestId: rid, untilMs: T0 + 3000 };
    const r = vendingStep(s, { e: 'tick' }, f.ctx(), T0 + 3000);
    expect(r.state.s).toBe('idle');
    expect(r.commands).toContainEqual({ c: 'hub.abandon', requestId: rid });
    // The late answer arrives after the machine moved on: ignored here (the runtime reverses it).
    const late = vendingStep(r.state, { e: 'hub.result', result: f.result(rid) }, f.ctx(), T0 + 4000);
    expect(kinds(late.commands)).not.toContain('vend');
  });

  it('"retry later" from the hub: never shown as declined; the machine waits on until its deadline, which gives up (hub.abandon: a late approval is refunded)', () => {
    const f = new Fixture();
    const rid = f.id();
    const s: VendingState = { s: 'settling', article: f.ctx().catalog[0]!, requestId: rid, untilMs: T0 + 3000 };
    const busy = vendingStep(s, { e: 'hub.result', result: f.result(rid, { status: 'declined', code: 'UNAVAILABLE', withdrawal: 'none' }) }, f.ctx(), T0);
    const error = vendingStep(s, { e: 'hub.error', requestId: rid, code: 'INTERNAL' }, f.ctx(), T0);
    for (const r of [busy, error]) {
      expect(r.state).toEqual(s);
      expect(r.commands).toEqual([display(HUB_BUSY_TEXT)]);
    }
    // The retry's approval within the deadline vends; past it, the machine gives up.
    expect(kinds(vendingStep(busy.state, { e: 'hub.result', result: f.result(rid) }, f.ctx(), T0 + 1500).commands)).toContain('vend');
    const gaveUp = vendingStep(busy.state, { e: 'tick' }, f.ctx(), T0 + 3000);
    expect(gaveUp.state.s).toBe('idle');
    expect(gaveUp.commands[0]).toEqual({ c: 'hub.abandon', requestId: rid });
    // A final decline needs no undoing.
    expect(kinds(vendingStep(s, { e: 'hub.result', result: f.result(rid, { status: 'declined', code: 'INSUFFICIENT_FUNDS', withdrawal: 'none' }) }, f.ctx(), T0).commands)).not.toContain('hub.abandon');
  });

  it('card pulled before the wallet signed: back to selected, nothing sent', () => {
    const f = new Fixture();
    const w = f.wallet();
    const r = run(f, [{ e: 'select', sku: 'cola' }, { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }, { e: 'card.lost' }]);
    expect(r.state.s).toBe('selected');
    expect(kinds(r.commands)).not.toContain('hub.request');
  });

  it('refuses expired, untrusted and blocklisted wallets before asking them to sign', () => {
    const f = new Fixture();
    const expired = f.wallet({ notAfter: T0 - 1 });
    const blocked = f.wallet();
    const other = new Fixture().wallet();
    const ctx = f.ctx({ blocklist: new Set([blocked.hex]) });
    for (const w of [expired, blocked, other]) {
      const r = run(f, [{ e: 'select', sku: 'cola' }, { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }], ctx);
      expect(r.state.s).toBe('selected');
      expect(kinds(r.commands)).not.toContain('nfc.authorize');
    }
  });

  it('offline: vends within the license limit, refuses beyond it and restricted articles', () => {
    const f = new Fixture();
    const w = f.wallet({ offlineLimitMinor: 300 });
    const offline = f.ctx({ online: false });
    const spec = { purpose: 'purchase' as const, amountMinor: 250, currency: 'EUR', lines: [{ sku: 'cola', qty: 1, unitMinor: 250 }] };
    let r = run(f, [{ e: 'select', sku: 'cola' }, { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }, { e: 'wallet.authorized', authorization: f.authorize(w, spec) }], offline);
    expect(r.state.s).toBe('dispensing');
    expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: true, op: { catalogVersion: 7 } });
    expect(kinds(r.commands)).toContain('vend');
    f.walletLocal.set(w.hex, 250);
    r = run(f, [{ e: 'select', sku: 'cola' }, { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }, { e: 'wallet.authorized', authorization: f.authorize(w, spec) }], f.ctx({ online: false }));
    expect(r.state.s).toBe('selected');
    expect(kinds(r.commands)).not.toContain('vend');
    expect(kinds(r.commands)).not.toContain('hub.request');
    const minor = f.wallet({ ageOver: 16 });
    r = run(f, [{ e: 'select', sku: 'beer' }, { e: 'tap', card: f.card(minor), requestId: f.id(), recordId: f.id() }], offline);
    expect(kinds(r.commands)).not.toContain('nfc.authorize');
  });

  it('a signature by another key than the license shown (a copied license) vends nothing, offline or online', () => {
    const f = new Fixture();
    const adult = f.wallet({ ageOver: 21 });
    const minor = f.wallet({ ageOver: 16 });
    const spec = { purpose: 'purchase' as const, amountMinor: 400, currency: 'EUR', lines: [{ sku: 'beer', qty: 1, unitMinor: 400 }] };
    for (const online of [false, true]) {
      // The minor shows the adult's license and signs with their own key.
      let r = run(f, [{ e: 'select', sku: 'beer' }, { e: 'tap', card: f.card(adult), requestId: f.id(), recordId: f.id() }], f.ctx({ online }));
      expect(r.state.s).toBe('authorizing');
      r = run(f, [{ e: 'wallet.authorized', authorization: f.authorize(minor, spec) }], f.ctx({ online }), r.state);
      expect(r.state.s).toBe('selected');
      expect(kinds(r.commands)).not.toContain('vend');
      expect(kinds(r.commands)).not.toContain('hub.request');
      expect(r.commands).toContainEqual({ c: 'display', text: FOREIGN_SIGNATURE_TEXT, tone: 'error' });
    }
  });

  it('the link drops between the tap and the signature: the restriction is checked at the offline decision', () => {
    const f = new Fixture();
    const minor = f.wallet({ ageOver: 16 });
    const spec = { purpose: 'purchase' as const, amountMinor: 400, currency: 'EUR', lines: [{ sku: 'beer', qty: 1, unitMinor: 400 }] };
    // Online at the tap (the hub would decide the restriction), offline once the wallet has signed.
    let r = run(f, [{ e: 'select', sku: 'beer' }, { e: 'tap', card: f.card(minor), requestId: f.id(), recordId: f.id() }], f.ctx({ online: true }));
    expect(r.state.s).toBe('authorizing');
    r = run(f, [{ e: 'wallet.authorized', authorization: f.authorize(minor, spec) }], f.ctx({ online: false }), r.state);
    expect(r.state.s).toBe('selected');
    expect(kinds(r.commands)).not.toContain('vend');
    expect(kinds(r.commands)).not.toContain('hub.request');
    expect(r.commands).toContainEqual({ c: 'display', text: 'not available for this customer', tone: 'error' });
    // An adult is served offline the same way.
    const adult = f.wallet({ ageOver: 21 });
    r = run(f, [{ e: 'select', sku: 'beer' }, { e: 'tap', card: f.card(adult), requestId: f.id(), recordId: f.id() }], f.ctx({ online: true }));
    r = run(f, [{ e: 'wallet.authorized', authorization: f.authorize(adult, spec) }], f.ctx({ online: false }), r.state);
    expect(r.state.s).toBe('dispensing');
    expect(kinds(r.commands)).toContain('vend');
  });

  it('unknown article and taps while busy are refused', () => {
    const f = new Fixture();
    expect(run(f, [{ e: 'select', sku: 'nope' }]).state.s).toBe('idle');
    const r = run(f, [{ e: 'tap', card: f.card(f.wallet()), requestId: f.id(), recordId: f.id() }]);
    expect(r.commands).toEqual([{ c: 'nfc.release' }]);
  });
});
