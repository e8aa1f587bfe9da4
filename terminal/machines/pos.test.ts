import { describe, expect, it } from 'vitest';
import { sha256, signMessage, toHex, utf8 } from '../../protocol/index.ts';
import { Fixture, T0 } from './fixtures.ts';
import { COLLECT_TICKET_TEXT, POS_IDLE, posStep, type PosEvent, type PosOperator, type PosState } from './pos.ts';
import { CHARGED_AT_MOST_ONCE_TEXT, FOREIGN_SIGNATURE_TEXT, HUB_BUSY_TEXT, NOT_CHARGED_TEXT, TOPUP_PENDING_TEXT, type Command, type TerminalContext } from './types.ts';

const kinds = (cs: Command[]): string[] => cs.map((c) => c.c);
const operators: PosOperator[] = [{ id: 'alice', pinSha256: toHex(sha256(utf8('4711'))) }];

function run(ctx: TerminalContext, events: PosEvent[], start: PosState = POS_IDLE, nowMs = T0): { state: PosState; commands: Command[] } {
  let state = start;
  const commands: Command[] = [];
  for (const ev of events) {
    const r = posStep(state, ev, ctx, nowMs, operators);
    state = r.state;
    commands.push(...r.commands);
  }
  return { state, commands };
}

describe('POS', () => {
  it('items → checkout → wallet signs the lines → request → verified result → receipt + statement on the wallet', () => {
    const f = new Fixture();
    const w = f.wallet();
    const rid = f.id();
    const ctx = f.ctx();
    let r = run(ctx, [{ e: 'item.add', sku: 'bread', qty: 2 }, { e: 'item.add', sku: 'cola', qty: 1 }, { e: 'checkout' }, { e: 'tap', card: f.card(w), requestId: rid, recordId: f.id() }]);
    const lines = [{ sku: 'bread', qty: 2, unitMinor: 120 }, { sku: 'cola', qty: 1, unitMinor: 250 }];
    expect(r.commands.find((c) => c.c === 'nfc.authorize')).toEqual({ c: 'nfc.authorize', offer: { purpose: 'purchase', amountMinor: 490, currency: 'EUR', lines } });
    r = run(ctx, [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'purchase', amountMinor: 490, currency: 'EUR', lines }) }], r.state);
    expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ requestId: rid, offline: false, op: { type: 'purchase', lines, catalogVersion: 7 } });
    expect(kinds(r.commands)).not.toContain('print');
    const st = f.statement(w.hex, 510);
    r = run(ctx, [{ e: 'hub.result', result: f.result(rid, { amountMinor: 490, statement: st, holdUntil: T0 + 600_000 }) }], r.state);
    expect(r.state.s).toBe('idle');
    const print = r.commands.find((c) => c.c === 'print') as Extract<Command, { c: 'print' }>;
    // Every amount on the slip as on the display: decimal, with the currency, never minor units.
    expect(print.lines).toEqual(expect.arrayContaining(['2 x bread @ 1.20 EUR', '1 x cola @ 2.50 EUR', 'TOTAL 4.90 EUR', 'balance 5.10 EUR']));
    expect(print.lines.join('\n')).toContain('cancellable until');
    expect(r.commands).toContainEqual({ c: 'nfc.store', kind: 'BalanceStatement', message: st, replace: true });
    // Print, then the delivered receipt (it closes the open sale), and only then the wallet write:
    // a power cut during that write must not make start-up recovery reverse a printed sale.
    expect(kinds(r.commands).slice(0, 3)).toEqual(['print', 'receipt', 'nfc.store']);
    expect(r.commands[1]).toEqual({ c: 'receipt', requestId: rid, outcome: 'delivered' });
  });

  it('prints nothing on a forged or foreign result', () => {
    const f = new Fixture();
    const rid = f.id();
    const s: PosState = { s: 'settling', kind: 'purchase', requestId: rid, lines: [], untilMs: T0 + 3000 };
    for (const result of [f.result(rid, {}, new Fixture().hub), f.result(rid, { terminalId: 'x' })]) {
      expect(kinds(posStep(s, { e: 'hub.result', result }, f.ctx(), T0).commands)).not.toContain('print');
    }
  });

  it('staff cash top-up needs the right PIN and the hub', () => {
    const f = new Fixture();
    const w = f.wallet();
    expect(run(f.ctx(), [{ e: 'topup', amountMinor: 2000, operatorId: 'alice', pin: '0000' }]).state.s).toBe('idle');
    expect(run(f.ctx(), [{ e: 'topup', amountMinor: 2000, operatorId: 'mallory', pin: '4711' }]).state.s).toBe('idle');
    expect(run(f.ctx({ online: false }), [{ e: 'topup', amountMinor: 2000, operatorId: 'alice', pin: '4711' }]).state.s).toBe('idle');
    const rid = f.id();
    const r = run(f.ctx(), [{ e: 'topup', amountMinor: 2000, operatorId: 'alice', pin: '4711' }, { e: 'tap', card: f.card(w), requestId: rid, recordId: f.id() }]);
    expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ op: { type: 'topup', wallet: w.hex, amountMinor: 2000, method: 'cash', operatorId: 'alice' } });
    const done = run(f.ctx(), [{ e: 'hub.result', result: f.result(rid, { amountMinor: 2000 }) }], r.state);
    expect(kinds(done.commands)).toContain('print');
  });

  it('cancellation inside the window: relays the wallet-signed cancellation and prints the refund', () => {
    const f = new Fixture();
    const w = f.wallet();
    const cancellation = signMessage('cancellation', { originalRequestId: f.id(), wallet: w.hex, time: T0, challenge: f.id() }, w.keys.secretKey);
    const rid = f.id();
    let r = run(f.ctx(), [{ e: 'cancel', cancellation, requestId: rid }]);
    expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ requestId: rid, op: { type: 'cancel', cancellation } });
    r = run(f.ctx(), [{ e: 'hub.result', result: f.result(rid, { amountMinor: 490 }) }], r.state);
    expect((r.commands.find((c) => c.c === 'print') as Extract<Command, { c: 'print' }>).lines).toContain('REFUND 4.90 EUR');
    const closed = run(f.ctx(), [{ e: 'cancel', cancellation, requestId: f.id() }]);
    const declined = run(f.ctx(), [{ e: 'hub.result', result: f.result((closed.state as { requestId: string }).requestId, { status: 'declined', code: 'CANCEL_WINDOW_CLOSED', withdrawal: 'none' }) }], closed.state);
    expect(kinds(declined.commands)).not.toContain('print');
  });

  it('offline purchase within the license limit prints an OFFLINE receipt and queues the request', () => {
    const f = new Fixture();
    const w = f.wallet({ offlineLimitMinor: 500 });
    const ctx = f.ctx({ online: false });
    const lines = [{ sku: 'bread', qty: 1, unitMinor: 120 }];
    const r = run(ctx, [
      { e: 'item.add', sku: 'bread', qty: 1 },
      { e: 'checkout' },
      { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() },
      { e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'purchase', amountMinor: 120, currency: 'EUR', lines }) },
    ]);
    expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: true });
    const slip = (r.commands.find((c) => c.c === 'print') as Extract<Command, { c: 'print' }>).lines;
    expect(slip).toContain('OFFLINE — settles when the hub is back');
    expect(slip).toEqual(expect.arrayContaining(['1 x bread @ 1.20 EUR', 'TOTAL 1.20 EUR']));
  });

  it('hub silent: abandon, print nothing', () => {
    const f = new Fixture();
    const s: PosState = { s: 'settling', kind: 'purchase', requestId: f.id(), lines: [], untilMs: T0 + 10 };
    const r = posStep(s, { e: 'tick' }, f.ctx(), T0 + 10);
    expect(r.commands[0]).toEqual({ c: 'hub.abandon', requestId: s.requestId });
    expect(kinds(r.commands)).not.toContain('print');
  });

  it('"retry later" from the hub is never shown as declined: the POS waits on (the request is re-sent), its deadline gives up as when the hub is silent', () => {
    const f = new Fixture();
    const w = f.wallet();
    for (const kind of ['purchase', 'ticket', 'topup', 'cancel'] as const) {
      const rid = f.id();
      const s: PosState = { s: 'settling', kind, requestId: rid, lines: [], untilMs: T0 + 3000 };
      for (const busy of [{ e: 'hub.result', result: f.result(rid, { status: 'declined', code: 'UNAVAILABLE', withdrawal: 'none' }) }, { e: 'hub.error', requestId: rid, code: 'INTERNAL' }] as PosEvent[]) {
        const r = posStep(s, busy, f.ctx(), T0 + 100);
        expect(r.state).toEqual(s);
        expect(r.commands).toEqual([{ c: 'display', text: HUB_BUSY_TEXT, tone: 'info' }]);
      }
      // The retry's approval is acted on as usual.
      const ticket = kind === 'ticket' ? { ticket: f.ticket(w.hex) } : {};
      const approved = run(f.ctx(), [{ e: 'hub.result', result: f.result(rid, { status: 'declined', code: 'TIMEOUT', withdrawal: 'none' }) }, { e: 'hub.result', result: f.result(rid, { amountMinor: 500, ...ticket }) }], s);
      expect(kinds(approved.commands)).toContain('print');
      expect(approved.commands).not.toContainEqual(expect.objectContaining({ c: 'display', text: expect.stringContaining('declined') }));
      // Still busy at the deadline: given up on, with the timeout's words (not "declined").
      const gaveUp = posStep(s, { e: 'tick' }, f.ctx(), T0 + 3000);
      expect(gaveUp.state.s).toBe('idle');
      expect(gaveUp.commands[0]).toEqual({ c: 'hub.abandon', requestId: rid });
      const text = { purchase: NOT_CHARGED_TEXT, ticket: CHARGED_AT_MOST_ONCE_TEXT, topup: TOPUP_PENDING_TEXT, cancel: CHARGED_AT_MOST_ONCE_TEXT }[kind];
      expect(gaveUp.commands).toContainEqual({ c: 'display', text, tone: 'error' });
    }
    // A final decline ends it at once.
    const s: PosState = { s: 'settling', kind: 'topup', requestId: f.id(), lines: [], untilMs: T0 + 3000 };
    const declined = posStep(s, { e: 'hub.result', result: f.result(s.requestId, { status: 'declined', code: 'REVOKED', withdrawal: 'none' }) }, f.ctx(), T0);
    expect(declined.state.s).toBe('idle');
    expect(declined.commands).toContainEqual({ c: 'display', text: 'declined: REVOKED', tone: 'error' });
  });

  it('while an earlier charge or top-up of the wallet is unanswered, no new one is taken (no double charge)', () => {
    const f = new Fixture();
    const w = f.wallet({ offlineLimitMinor: 500 });
    const other = f.wallet();
    const usage = { ...f.usage(), abandonedFor: (wallet: string) => wallet === w.hex };
    const tap = (card = f.card(w)): PosEvent => ({ e: 'tap', card, requestId: f.id(), recordId: f.id() });
    for (const online of [true, false]) {
      const r = run(f.ctx({ usage, online }), [{ e: 'item.add', sku: 'bread', qty: 1 }, { e: 'checkout' }, tap()]);
      expect(kinds(r.commands)).not.toContain('nfc.authorize');
      expect(r.commands).toContainEqual({ c: 'display', text: 'previous payment still pending — please wait', tone: 'error' });
      expect(r.commands.at(-1)).toEqual({ c: 'nfc.release' });
      // The cart stays: once the hub has answered, the same customer taps again.
      expect(r.state).toMatchObject({ s: 'awaiting.tap', mode: 'purchase', totalMinor: 120 });
    }
    const topup = run(f.ctx({ usage }), [{ e: 'topup', amountMinor: 2000, operatorId: 'alice', pin: '4711' }, tap()]);
    expect(kinds(topup.commands)).not.toContain('hub.request');
    expect(topup.commands).toContainEqual({ c: 'display', text: 'previous payment still pending — please wait', tone: 'error' });
    const ticket = run(f.ctx({ usage }), [{ e: 'ticket.sell', product: 'day' }, tap()]);
    expect(kinds(ticket.commands)).not.toContain('nfc.authorize');
    // Another wallet pays as usual.
    expect(kinds(run(f.ctx({ usage }), [{ e: 'item.add', sku: 'bread', qty: 1 }, { e: 'checkout' }, tap(f.card(other))]).commands)).toContain('nfc.authorize');
  });

  it('ticket sale: the wallet signs a ticket offer, the hub-signed ticket is stored on the wallet', () => {
    const f = new Fixture();
    const w = f.wallet();
    const rid = f.id();
    let r = run(f.ctx(), [{ e: 'ticket.sell', product: 'day' }, { e: 'tap', card: f.card(w), requestId: rid, recordId: f.id() }]);
    expect(r.commands.find((c) => c.c === 'nfc.authorize')).toEqual({ c: 'nfc.authorize', offer: { purpose: 'ticket', amountMinor: 500, currency: 'EUR', lines: [] } });
    r = run(f.ctx(), [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'ticket', amountMinor: 500, currency: 'EUR', lines: [] }) }], r.state);
    expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ op: { type: 'ticket.sale', product: 'day' }, offline: false });
    const ticket = f.ticket(w.hex);
    r = run(f.ctx(), [{ e: 'hub.result', result: f.result(rid, { amountMinor: 500, ticket }) }], r.state);
    expect(r.commands).toContainEqual({ c: 'ticket.hold', ticket, requestId: rid });
    expect(r.commands).toContainEqual({ c: 'nfc.store', kind: 'Ticket', message: ticket, replace: false, ticketId: ticket.body.ticketId });
    // Kept (ticket.hold) before the wallet is asked to store it; success only once it has.
    expect(kinds(r.commands).indexOf('ticket.hold')).toBeLessThan(kinds(r.commands).indexOf('nfc.store'));
    expect(r.state.s).toBe('delivering');
    expect(r.commands).not.toContainEqual(expect.objectContaining({ c: 'display', tone: 'ok' }));
    r = run(f.ctx(), [{ e: 'ticket.stored', ticketId: ticket.body.ticketId, ok: true }], r.state);
    expect(r.state.s).toBe('idle');
    expect(r.commands).toContainEqual({ c: 'ticket.collected', ticketId: ticket.body.ticketId });
    expect(r.commands).toContainEqual({ c: 'display', text: 'ticket stored on your wallet', tone: 'ok' });
    expect(run(f.ctx({ online: false }), [{ e: 'ticket.sell', product: 'day' }]).state.s).toBe('idle');
  });

  it('ticket sale is priced by the announced products: an unknown product, or one in another currency, is refused', () => {
    const f = new Fixture();
    const dearer = run(f.ctx({ ticketProducts: [{ name: 'day', priceMinor: 650, currency: 'EUR', validityMs: 3600_000, stations: [] }] }), [{ e: 'ticket.sell', product: 'day' }]);
    expect(dearer.state).toMatchObject({ s: 'awaiting.tap', mode: 'ticket', priceMinor: 650 });
    for (const ticketProducts of [[], [{ name: 'day', priceMinor: 500, currency: 'USD', validityMs: 3600_000, stations: [] }]]) {
      const r = run(f.ctx({ ticketProducts }), [{ e: 'ticket.sell', product: 'day' }]);
      expect(r.state.s).toBe('idle');
      expect(r.commands).toEqual([{ c: 'display', text: 'unknown ticket day', tone: 'error' }]);
    }
  });

  it('ticket sale whose wallet left before the ticket was stored: no success shown, the ticket stays held until the next tap collects it', () => {
    const f = new Fixture();
    const w = f.wallet();
    const rid = f.id();
    const ticket = f.ticket(w.hex);
    const settling: PosState = { s: 'settling', kind: 'ticket', requestId: rid, lines: [], untilMs: T0 + 3000 };
    let r = run(f.ctx(), [{ e: 'hub.result', result: f.result(rid, { amountMinor: 500, ticket }) }, { e: 'ticket.stored', ticketId: ticket.body.ticketId, ok: false }], settling);
    expect(r.state.s).toBe('idle');
    expect(kinds(r.commands)).not.toContain('ticket.collected');
    expect(r.commands).toContainEqual({ c: 'display', text: COLLECT_TICKET_TEXT, tone: 'error' });
    expect(r.commands).not.toContainEqual(expect.objectContaining({ c: 'display', tone: 'ok' }));
    // No outcome at all (the reader hung): the same at the deadline.
    const waiting = run(f.ctx(), [{ e: 'hub.result', result: f.result(rid, { amountMinor: 500, ticket }) }], settling).state;
    const timedOut = run(f.ctx(), [{ e: 'tick' }], waiting, T0 + 60_000);
    expect(timedOut.state.s).toBe('idle');
    expect(timedOut.commands).toContainEqual({ c: 'display', text: COLLECT_TICKET_TEXT, tone: 'error' });
    // The wallet taps again at the idle POS (or while the cashier rings up the next cart): it signs
    // a zero-amount offer with its license's key, and the held ticket is written.
    const held = f.ctx({ heldTickets: (wallet) => (wallet === w.hex ? [ticket] : []) });
    const collect = { purpose: 'ticket' as const, amountMinor: 0, currency: 'EUR', lines: [] };
    for (const start of [POS_IDLE, { s: 'cart', lines: [{ sku: 'cola', qty: 1, unitMinor: 250 }] } as PosState]) {
      r = run(held, [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }], start);
      expect(r.state.s).toBe('collecting');
      expect(r.commands).toContainEqual({ c: 'nfc.authorize', offer: collect });
      expect(kinds(r.commands)).not.toContain('nfc.store');
      r = run(held, [{ e: 'wallet.authorized', authorization: f.authorize(w, collect) }], r.state);
      expect(r.state.s).toBe('delivering');
      expect(r.commands).toContainEqual({ c: 'nfc.store', kind: 'Ticket', message: ticket, replace: false, ticketId: ticket.body.ticketId });
      r = run(held, [{ e: 'ticket.stored', ticketId: ticket.body.ticketId, ok: true }], r.state);
      expect(r.state).toEqual(start);
      expect(r.commands).toContainEqual({ c: 'ticket.collected', ticketId: ticket.body.ticketId });
    }
    // Another wallet's tap collects nothing.
    r = run(held, [{ e: 'tap', card: f.card(f.wallet()), requestId: f.id(), recordId: f.id() }]);
    expect(r.state.s).toBe('idle');
    expect(kinds(r.commands)).not.toContain('nfc.store');
  });

  for (const failure of [{ e: 'wallet.declined', code: 'USER_CANCELLED' }, { e: 'card.lost' }] as PosEvent[]) {
    it(`after ${failure.e} during a ticket sale, the next tap is still a ticket sale (not a purchase of an empty cart)`, () => {
      const f = new Fixture();
      const w = f.wallet({ offlineLimitMinor: 5000 });
      let r = run(f.ctx(), [{ e: 'ticket.sell', product: 'day' }, { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }, failure]);
      expect(r.state).toEqual({ s: 'awaiting.tap', mode: 'ticket', product: 'day', priceMinor: 500, untilMs: T0 + 60_000 });
      // The hub went away meanwhile: offline a purchase would be accepted, printed and never ticketed.
      const offline = f.ctx({ online: false });
      r = run(offline, [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }], r.state);
      const offer = r.commands.find((c) => c.c === 'nfc.authorize');
      expect(offer).toEqual({ c: 'nfc.authorize', offer: { purpose: 'ticket', amountMinor: 500, currency: 'EUR', lines: [] } });
      r = run(offline, [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'ticket', amountMinor: 500, currency: 'EUR', lines: [] }) }], r.state);
      expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ op: { type: 'ticket.sale', product: 'day' }, offline: false });
      expect(kinds(r.commands)).not.toContain('print');
      expect(r.commands).not.toContainEqual(expect.objectContaining({ c: 'display', tone: 'ok' }));
    });
  }

  it('a signature by another key than the license shown (a copied license) sells nothing, offline or online, purchase or ticket', () => {
    const f = new Fixture();
    const owner = f.wallet({ offlineLimitMinor: 5000 });
    const copier = f.wallet({ offlineLimitMinor: 5000 });
    const lines = [{ sku: 'bread', qty: 2, unitMinor: 120 }];
    for (const online of [false, true]) {
      const ctx = f.ctx({ online });
      let r = run(ctx, [{ e: 'item.add', sku: 'bread', qty: 2 }, { e: 'checkout' }, { e: 'tap', card: f.card(owner), requestId: f.id(), recordId: f.id() }]);
      r = run(ctx, [{ e: 'wallet.authorized', authorization: f.authorize(copier, { purpose: 'purchase', amountMinor: 240, currency: 'EUR', lines }) }], r.state);
      expect(kinds(r.commands)).not.toContain('hub.request');
      expect(kinds(r.commands)).not.toContain('print');
      expect(r.commands).toContainEqual({ c: 'display', text: FOREIGN_SIGNATURE_TEXT, tone: 'error' });
      expect(r.state).toEqual({ s: 'awaiting.tap', mode: 'purchase', lines, totalMinor: 240, untilMs: T0 + 60_000 });
      // The owner's own signature is still taken on the next tap.
      r = run(ctx, [{ e: 'tap', card: f.card(owner), requestId: f.id(), recordId: f.id() }], r.state);
      r = run(ctx, [{ e: 'wallet.authorized', authorization: f.authorize(owner, { purpose: 'purchase', amountMinor: 240, currency: 'EUR', lines }) }], r.state);
      expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: !online });
    }
    let r = run(f.ctx(), [{ e: 'ticket.sell', product: 'day' }, { e: 'tap', card: f.card(owner), requestId: f.id(), recordId: f.id() }]);
    r = run(f.ctx(), [{ e: 'wallet.authorized', authorization: f.authorize(copier, { purpose: 'ticket', amountMinor: 500, currency: 'EUR', lines: [] }) }], r.state);
    expect(kinds(r.commands)).not.toContain('hub.request');
    expect(r.state).toEqual({ s: 'awaiting.tap', mode: 'ticket', product: 'day', priceMinor: 500, untilMs: T0 + 60_000 });
  });

  it('after a wallet decline or a pulled card during a purchase, the same cart waits for the next tap', () => {
    const f = new Fixture();
    const w = f.wallet();
    for (const failure of [{ e: 'wallet.declined', code: 'USER_CANCELLED' }, { e: 'card.lost' }] as PosEvent[]) {
      const r = run(f.ctx(), [{ e: 'item.add', sku: 'bread', qty: 2 }, { e: 'checkout' }, { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }, failure]);
      expect(r.state).toEqual({ s: 'awaiting.tap', mode: 'purchase', lines: [{ sku: 'bread', qty: 2, unitMinor: 120 }], totalMinor: 240, untilMs: T0 + 60_000 });
    }
  });

  it('a held ticket goes only to the wallet that signs with its license key: a copied license collects nothing', () => {
    const f = new Fixture();
    const w = f.wallet();
    const thief = f.wallet();
    const ticket = f.ticket(w.hex);
    const held = f.ctx({ heldTickets: (wallet) => (wallet === w.hex ? [ticket] : []) });
    const collect = { purpose: 'ticket' as const, amountMinor: 0, currency: 'EUR', lines: [] };
    const cart: PosState = { s: 'cart', lines: [{ sku: 'cola', qty: 1, unitMinor: 250 }] };
    // The victim's license, copied onto another device: that device signs with its own key.
    const tapped = run(held, [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }], cart).state;
    let r = run(held, [{ e: 'wallet.authorized', authorization: f.authorize(thief, collect) }], tapped);
    expect(r.state).toEqual(cart);
    expect(kinds(r.commands)).not.toContain('nfc.store');
    expect(r.commands).toContainEqual({ c: 'display', text: 'wallet refused: not the license holder', tone: 'error' });
    // The right key, but a payment instead of the zero-amount collection offer: refused as well.
    r = run(held, [{ e: 'wallet.authorized', authorization: f.authorize(w, { ...collect, amountMinor: 250, lines: cart.lines }) }], tapped);
    expect(kinds(r.commands)).not.toContain('nfc.store');
    // Declined, removed, or no answer: the cart is back and the ticket stays held.
    for (const ev of [{ e: 'wallet.declined', code: 'USER_DECLINED' }, { e: 'card.lost' }] as PosEvent[]) {
      r = run(held, [ev], tapped);
      expect(r.state).toEqual(cart);
      expect(kinds(r.commands)).not.toContain('nfc.store');
    }
    r = run(held, [{ e: 'tick' }], tapped, T0 + 60_000);
    expect(r.state).toEqual(cart);
    expect(r.commands).toContainEqual({ c: 'display', text: COLLECT_TICKET_TEXT, tone: 'error' });
  });

  it('offline: every line is checked against its article restriction at the decision (beer to a minor refused)', () => {
    const f = new Fixture();
    const minor = f.wallet({ ageOver: 16 });
    const adult = f.wallet({ ageOver: 18 });
    const lines = [{ sku: 'cola', qty: 1, unitMinor: 250 }, { sku: 'beer', qty: 1, unitMinor: 400 }];
    const spec = { purpose: 'purchase' as const, amountMinor: 650, currency: 'EUR', lines };
    for (const [w, sold] of [[minor, false], [adult, true]] as const) {
      // Online at the tap, offline once the wallet has signed (the link dropped in between).
      let r = run(f.ctx(), [{ e: 'item.add', sku: 'cola', qty: 1 }, { e: 'item.add', sku: 'beer', qty: 1 }, { e: 'checkout' }, { e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }]);
      expect(r.state.s).toBe('authorizing');
      r = run(f.ctx({ online: false }), [{ e: 'wallet.authorized', authorization: f.authorize(w, spec) }], r.state);
      expect(kinds(r.commands).includes('hub.request')).toBe(sold);
      expect(kinds(r.commands).includes('print')).toBe(sold);
      if (!sold) {
        expect(r.state.s).toBe('awaiting.tap');
        expect(r.commands).toContainEqual({ c: 'display', text: 'Beer: not available for this customer', tone: 'error' });
      }
    }
  });
});
