import { describe, expect, it } from 'vitest';
import { computeFare, generateKeyPair, signMessage } from '../../protocol/index.ts';
import { FARES, Fixture, T0 } from './fixtures.ts';
import { ENTRY_CHECK_MS, ENTRY_RETAP_MS, ENTRY_UNPASSED_MS, GATE_IDLE, gateStep, MAX_ENTRY_RETAPS, parseEntryRetaps, rememberEntryRetap, type GateEvent, type GateState } from './gate.ts';
import type { Command, TerminalContext } from './types.ts';

/** The machine's default passage window: the barrier's 8 s, its 0.3 s close delay, a 2 s margin. */
const WINDOW_MS = 8_000 + 300 + 2_000;
const AFTER_WINDOW = T0 + WINDOW_MS + 1;
/** A paid exit kept by the runtime (durable): before the barrier opens, and again when nobody passed. */
const GRANT = (wallet: string, requestId: string, kind: 'fare' | 'ticket' = 'fare', refundable = kind === 'fare') => ({ c: 'paidExit.grant', wallet, requestId, kind, refundable });

const kinds = (cs: Command[]): string[] => cs.map((c) => c.c);
const entryCtx = (f: Fixture, over: Partial<TerminalContext> = {}): TerminalContext => f.ctx({ gate: f.entryGate(), ...over });
const exitCtx = (f: Fixture, over: Partial<TerminalContext> = {}): TerminalContext => f.ctx({ gate: { station: 'C', mode: 'exit' }, ...over });

function run(ctx: TerminalContext, events: GateEvent[], start: GateState = GATE_IDLE, nowMs = T0): { state: GateState; commands: Command[] } {
  let state = start;
  const commands: Command[] = [];
  for (const ev of events) {
    const r = gateStep(state, ev, ctx, nowMs);
    state = r.state;
    commands.push(...r.commands);
  }
  return { state, commands };
}

describe('gate: entry', () => {
  it('writes a gate admission record, then opens; passage returns to idle', () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const recordId = f.id();
    let r = run(entryCtx(f), [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId }]);
    expect(r.state.s).toBe('admitting');
    expect(r.commands).toEqual([{ c: 'nfc.storeAdmission', body: { recordId, wallet: w.hex, terminalId: 'gate-in', station: 'A', time: T0 } }]);
    r = run(entryCtx(f), [{ e: 'wallet.stored' }], r.state);
    expect(kinds(r.commands)).toEqual(['gate.open', 'nfc.release', 'display']);
    r = run(entryCtx(f), [{ e: 'passage' }], r.state);
    expect(r.state.s).toBe('idle');
  });

  it('does not open when the card leaves before the record is written', () => {
    const f = new Fixture('gate-in');
    const r = run(entryCtx(f), [{ e: 'tap', card: f.card(f.wallet()), requestId: f.id(), recordId: f.id() }, { e: 'card.lost' }]);
    expect(kinds(r.commands)).not.toContain('gate.open');
    expect(kinds(r.commands)).toContain('gate.deny');
  });

  it("a record written whose answer was lost (card pulled, RF error): the same wallet's retap within a minute is that entry's retry, not 'already inside'", () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const recordId = f.id();
    const tapped = run(entryCtx(f), [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId }]).state;
    // The wallet holds the record after all (its answer was lost).
    const written = f.card(w, { admission: { recordId: 3, message: signMessage('gate.admission', { recordId, wallet: w.hex, terminalId: 'gate-in', station: 'A', time: T0 }, f.terminal.secretKey) } });
    const other = f.card(w, { admission: { recordId: 3, message: f.admission(w.hex, 'A', T0) } });
    for (const [at, lost] of [[T0, { e: 'card.lost' }], [T0 + 10_000, { e: 'tick' }]] as const) {
      f.entryRetaps.clear();
      const given = run(entryCtx(f), [lost], tapped, at);
      // Remembered apart from the machine's state (the runtime keeps it durably), before the deny.
      expect(given.commands[0]).toEqual({ c: 'entry.remember', wallet: w.hex, recordId, kind: 'unopened', untilMs: at + ENTRY_RETAP_MS });
      expect(kinds(given.commands)).toEqual(['entry.remember', 'gate.deny', 'nfc.release', 'display']);
      expect(given.state).toEqual(GATE_IDLE);
      f.keep(given.commands);
      expect(run(entryCtx(f), [{ e: 'tap', card: written, requestId: f.id(), recordId: f.id() }], given.state, at + 5_000).state).toMatchObject({ s: 'admitting', retap: true });
      // Past the minute, or another record of the wallet: anti-passback as ever.
      expect(kinds(run(entryCtx(f), [{ e: 'tap', card: written, requestId: f.id(), recordId: f.id() }], given.state, at + ENTRY_RETAP_MS + 1).commands)).toContain('gate.deny');
      expect(kinds(run(entryCtx(f), [{ e: 'tap', card: other, requestId: f.id(), recordId: f.id() }], given.state, at + 5_000).commands)).toContain('gate.deny');
    }
  });

  it("the retry window survives another wallet's entry, a deny and a restart; the retry through, the wallet is inside", () => {
    const f = new Fixture('gate-in');
    const [a, b, c] = [f.wallet(), f.wallet(), f.wallet()];
    const recordId = f.id();
    const aTapped = run(entryCtx(f), [{ e: 'tap', card: f.card(a), requestId: f.id(), recordId }]);
    const aLost = run(entryCtx(f), [{ e: 'card.lost' }], aTapped.state);
    f.keep(aLost.commands);
    // B enters and passes; C is refused (already inside) — both from the idle state A's loss left.
    const bIn = run(entryCtx(f), [{ e: 'tap', card: f.card(b), requestId: f.id(), recordId: f.id() }, { e: 'wallet.stored' }, { e: 'passage' }], aLost.state, T0 + 1_000);
    expect(bIn.state).toEqual(GATE_IDLE);
    expect(kinds(bIn.commands)).not.toContain('entry.forget');
    const cInside = f.card(c, { admission: { recordId: 2, message: f.admission(c.hex, 'B', T0 - 60_000) } });
    const cDenied = run(entryCtx(f), [{ e: 'tap', card: cInside, requestId: f.id(), recordId: f.id() }], bIn.state, T0 + 2_000);
    expect(cDenied.commands).toContainEqual({ c: 'display', text: 'already inside', tone: 'error' });
    // A restart: the machine starts idle again; the runtime's memory is what carries the retry.
    const aRecord = f.card(a, { admission: { recordId: 3, message: signMessage('gate.admission', { recordId, wallet: a.hex, terminalId: 'gate-in', station: 'A', time: T0 }, f.terminal.secretKey) } });
    const retried = run(entryCtx(f), [{ e: 'tap', card: aRecord, requestId: f.id(), recordId: f.id() }], GATE_IDLE, T0 + 5_000);
    expect(kinds(retried.commands)).toEqual(['nfc.storeAdmission']);
    const through = run(entryCtx(f), [{ e: 'wallet.stored' }, { e: 'passage' }], retried.state, T0 + 5_100);
    expect(through.commands).toContainEqual({ c: 'entry.forget', wallet: a.hex });
    f.keep(through.commands);
    // In for real now: the record on the wallet (the retry's) keeps it out, within the minute too.
    const rewritten = f.card(a, { admission: { recordId: 3, message: signMessage('gate.admission', { recordId, wallet: a.hex, terminalId: 'gate-in', station: 'A', time: T0 + 5_000 }, f.terminal.secretKey) } });
    expect(kinds(run(entryCtx(f), [{ e: 'tap', card: rewritten, requestId: f.id(), recordId: f.id() }], GATE_IDLE, T0 + 10_000).commands)).toContain('gate.deny');
  });

  it("opened, nobody passed (the customer turned back): remembered; the same wallet's retap here is let in again on the same record, nothing written; through, anti-passback holds", () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const recordId = f.id();
    const opened = run(entryCtx(f), [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId }, { e: 'wallet.stored' }]);
    expect(opened.state).toMatchObject({ s: 'passing', admitted: { wallet: w.hex, recordId } });
    const nobody = run(entryCtx(f), [{ e: 'tick' }], opened.state, AFTER_WINDOW);
    expect(nobody.state).toEqual(GATE_IDLE);
    expect(nobody.commands).toEqual([{ c: 'entry.remember', wallet: w.hex, recordId, kind: 'unpassed', untilMs: AFTER_WINDOW + ENTRY_UNPASSED_MS }]);
    f.keep(nobody.commands);
    const onWallet = f.card(w, { admission: { recordId: 3, message: signMessage('gate.admission', { recordId, wallet: w.hex, terminalId: 'gate-in', station: 'A', time: T0 }, f.terminal.secretKey) } });
    // Another wallet in between changes nothing.
    const other = f.wallet();
    run(entryCtx(f), [{ e: 'tap', card: f.card(other), requestId: f.id(), recordId: f.id() }, { e: 'wallet.stored' }, { e: 'passage' }], GATE_IDLE, T0 + 60_000);
    const again = run(entryCtx(f), [{ e: 'tap', card: onWallet, requestId: f.id(), recordId: f.id() }], GATE_IDLE, T0 + 5 * 60_000);
    expect(again.commands).toEqual([{ c: 'gate.open' }, { c: 'nfc.release' }, { c: 'display', text: 'welcome', tone: 'ok' }]);
    // Nobody again: remembered again, from this opening.
    const stillNobody = run(entryCtx(f), [{ e: 'tick' }], again.state, T0 + 5 * 60_000 + WINDOW_MS + 1);
    expect(stillNobody.commands).toEqual([{ c: 'entry.remember', wallet: w.hex, recordId, kind: 'unpassed', untilMs: T0 + 5 * 60_000 + WINDOW_MS + 1 + ENTRY_UNPASSED_MS }]);
    // Through this time: forgotten, and the record keeps the wallet out as any fresh one.
    const through = run(entryCtx(f), [{ e: 'passage' }], again.state, T0 + 5 * 60_000 + 2_000);
    expect(through.commands).toEqual([{ c: 'entry.forget', wallet: w.hex }]);
    f.keep(through.commands);
    expect(run(entryCtx(f), [{ e: 'tap', card: onWallet, requestId: f.id(), recordId: f.id() }], GATE_IDLE, T0 + 6 * 60_000).commands).toContainEqual({ c: 'display', text: 'already inside', tone: 'error' });
  });

  it('an opening nobody passed is let in again only for that record, that wallet, here, within the window', () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const recordId = f.id();
    f.entryRetaps.set(w.hex, { wallet: w.hex, recordId, kind: 'unpassed', untilMs: T0 + ENTRY_UNPASSED_MS });
    const record = (over: Partial<{ recordId: string; wallet: string; terminalId: string }> = {}) =>
      f.card(w, { admission: { recordId: 3, message: signMessage('gate.admission', { recordId, wallet: w.hex, terminalId: 'gate-in', station: 'A', time: T0 - 60_000, ...over }, f.terminal.secretKey) } });
    const tap = (card: ReturnType<Fixture['card']>, at = T0 + 60_000) => run(entryCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }], GATE_IDLE, at);
    expect(kinds(tap(record()).commands)).toEqual(['gate.open', 'nfc.release', 'display']);
    const denied = [
      tap(record(), T0 + ENTRY_UNPASSED_MS + 1), // past the window
      tap(record({ recordId: f.id() })), // another record
      tap(record({ terminalId: 'gate-other' })), // another gate's record of that id
      tap(f.card(f.wallet(), { admission: record().admission })), // another wallet carrying it
    ];
    for (const d of denied) expect(kinds(d.commands)).not.toContain('gate.open');
  });

  it('a ticket entry nobody passed: its use stands (reported, a failed receipt for that opening); the retap is let in on the record without using anything again', () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const ticket = f.ticket(w.hex);
    const rid = f.id();
    const recordId = f.id();
    const stored = run(entryCtx(f), [{ e: 'tap', card: f.card(w, { tickets: [{ recordId: 7, message: ticket }] }), requestId: rid, recordId }, { e: 'wallet.stored' }]);
    expect(kinds(stored.commands)).toEqual(expect.arrayContaining(['ticket.markUsed', 'hub.request', 'nfc.delete']));
    const nobody = run(entryCtx(f), [{ e: 'tick' }], stored.state, AFTER_WINDOW);
    expect(nobody.commands).toEqual([
      { c: 'entry.remember', wallet: w.hex, recordId, kind: 'unpassed', untilMs: AFTER_WINDOW + ENTRY_UNPASSED_MS },
      { c: 'receipt', requestId: rid, outcome: 'failed', reason: 'no passage' },
    ]);
    f.keep(nobody.commands);
    f.usedTickets.add(ticket.body.ticketId); // ticket.markUsed, as the runtime keeps it
    // The ticket is gone from the wallet; its admission record (with the ticket id) is there.
    const onWallet = f.card(w, { admission: { recordId: 3, message: signMessage('gate.admission', { recordId, wallet: w.hex, terminalId: 'gate-in', station: 'A', time: T0, ticketId: ticket.body.ticketId }, f.terminal.secretKey) } });
    const again = run(entryCtx(f), [{ e: 'tap', card: onWallet, requestId: f.id(), recordId: f.id() }], GATE_IDLE, T0 + 120_000);
    expect(again.commands).toEqual([{ c: 'gate.open' }, { c: 'nfc.release' }, { c: 'display', text: 'welcome (ticket)', tone: 'ok' }]);
    // Through: nothing reported (the ticket's use was), the memory is over.
    expect(run(entryCtx(f), [{ e: 'passage' }], again.state, T0 + 121_000).commands).toEqual([{ c: 'entry.forget', wallet: w.hex }]);
  });

  it('the remembered records: one per wallet (the latest), expired ones dropped, at most MAX_ENTRY_RETAPS, read back as kept', () => {
    let list = rememberEntryRetap([], { wallet: 'w1', recordId: 'r1', kind: 'unopened', untilMs: T0 + 1 }, T0);
    list = rememberEntryRetap(list, { wallet: 'w1', recordId: 'r2', kind: 'unpassed', untilMs: T0 + 10 }, T0);
    expect(list).toEqual([{ wallet: 'w1', recordId: 'r2', kind: 'unpassed', untilMs: T0 + 10 }]);
    list = rememberEntryRetap(list, { wallet: 'w2', recordId: 'r3', kind: 'unopened', untilMs: T0 + 100 }, T0 + 11);
    expect(list.map((r) => r.wallet)).toEqual(['w2']);
    for (let i = 0; i < MAX_ENTRY_RETAPS + 5; i++) list = rememberEntryRetap(list, { wallet: `x${i}`, recordId: `r${i}`, kind: 'unpassed', untilMs: T0 + 1000 }, T0 + 12);
    expect(list).toHaveLength(MAX_ENTRY_RETAPS);
    expect(list.at(-1)?.wallet).toBe(`x${MAX_ENTRY_RETAPS + 4}`);
    expect(parseEntryRetaps(JSON.stringify(list))).toEqual(list);
    for (const bad of [undefined, '', '{', '{}', '[{"wallet":1}]']) expect(parseEntryRetaps(bad)).toEqual([]);
  });

  it('denies blocklisted wallets and anti-passback (already inside)', () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const blocked = run(entryCtx(f, { blocklist: new Set([w.hex]) }), [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }]);
    expect(kinds(blocked.commands)).toContain('gate.deny');
    const inside = f.card(w, { admission: { recordId: 1, message: f.admission(w.hex, 'B', T0 - 60_000) } });
    const again = run(entryCtx(f), [{ e: 'tap', card: inside, requestId: f.id(), recordId: f.id() }]);
    expect(kinds(again.commands)).toContain('gate.deny');
    // A stale record (older than the longest trip) does not block entry.
    const stale = f.card(w, { admission: { recordId: 1, message: f.admission(w.hex, 'B', T0 - FARES.maxTripMs - 1) } });
    expect(run(entryCtx(f), [{ e: 'tap', card: stale, requestId: f.id(), recordId: f.id() }]).state.s).toBe('admitting');
  });

  it('a hub-signed ticket admits, is removed from the wallet, marked used and reported', () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const ticket = f.ticket(w.hex);
    const rid = f.id();
    let r = run(entryCtx(f), [{ e: 'tap', card: f.card(w, { tickets: [{ recordId: 7, message: ticket }] }), requestId: rid, recordId: f.id() }]);
    expect(r.commands[0]).toMatchObject({ c: 'nfc.storeAdmission', body: { ticketId: ticket.body.ticketId } });
    r = run(entryCtx(f), [{ e: 'wallet.stored' }], r.state);
    expect(r.commands).toContainEqual({ c: 'ticket.markUsed', ticketId: ticket.body.ticketId });
    expect(r.commands).toContainEqual({ c: 'nfc.delete', recordId: 7 });
    expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ requestId: rid, op: { type: 'ticket.use', station: 'A' } });
    r = run(entryCtx(f), [{ e: 'passage' }], r.state);
    expect(r.commands).toEqual([{ c: 'receipt', requestId: rid, outcome: 'passed' }]);
  });

  it('a ticket entry with no outbox row left to report its use is refused (see staff); without a ticket it enters as usual', () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const full = f.ctx({ gate: { station: 'A', mode: 'entry' }, usage: { ...f.usage(), outboxRoom: () => 0 } });
    const withTicket = run(full, [{ e: 'tap', card: f.card(w, { tickets: [{ recordId: 3, message: f.ticket(w.hex) }] }), requestId: f.id(), recordId: f.id() }]);
    expect(kinds(withTicket.commands)).toContain('gate.deny');
    expect(kinds(withTicket.commands)).not.toContain('nfc.storeAdmission');
    expect(withTicket.commands).toContainEqual(expect.objectContaining({ c: 'display', text: 'see staff: OFFLINE_LIMIT' }));
    const plain = run(full, [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }]);
    expect(kinds(plain.commands)).toEqual(['nfc.storeAdmission']);
  });

  it('a used, expired, foreign or forged ticket is ignored (pay-as-you-go entry instead)', () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const used = f.ticket(w.hex);
    f.usedTickets.add(used.body.ticketId);
    const expired = f.ticket(w.hex, { validUntil: T0 - 1 });
    const foreign = f.ticket(f.wallet().hex);
    const wrongStation = f.ticket(w.hex, { stations: ['B'] });
    const forged = { ...f.ticket(w.hex), body: { ...f.ticket(w.hex).body, product: 'year' } };
    for (const t of [used, expired, foreign, wrongStation, forged]) {
      const r = run(entryCtx(f), [{ e: 'tap', card: f.card(w, { tickets: [{ recordId: 1, message: t }] }), requestId: f.id(), recordId: f.id() }]);
      expect(r.commands[0]).toMatchObject({ c: 'nfc.storeAdmission' });
      expect((r.commands[0] as { body: { ticketId?: string } }).body.ticketId).toBeUndefined();
    }
  });
});

describe('gate: exit', () => {
  function exitTo(f: Fixture, w: ReturnType<Fixture['wallet']>, card: ReturnType<Fixture['card']>, ctx = exitCtx(f)) {
    const rid = f.id();
    const tapped = run(ctx, [{ e: 'tap', card, requestId: rid, recordId: f.id() }]);
    const spec = (tapped.commands.find((c) => c.c === 'nfc.authorize') as Extract<Command, { c: 'nfc.authorize' }>).offer;
    const authorized = run(ctx, [{ e: 'wallet.authorized', authorization: f.authorize(w, spec) }], tapped.state);
    return { rid, spec, tapped, authorized };
  }

  it('computes the fare from the entry record and opens on a covering statement BEFORE the wallet signs', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const entry = f.admission(w.hex, 'A', T0 - 20 * 60_000);
    const card = f.card(w, { admission: { recordId: 9, message: entry }, statement: f.statement(w.hex, 1000, T0 - 3600_000) });
    const { rid, spec, tapped, authorized } = exitTo(f, w, card);
    expect(spec).toEqual({ purpose: 'fare', amountMinor: computeFare(FARES, { station: 'A', time: T0 - 20 * 60_000 }, 'C', T0).fareMinor, currency: 'EUR', lines: [] });
    expect(spec.amountMinor).toBe(300);
    expect(kinds(tapped.commands).slice(0, 2)).toEqual(['gate.open', 'nfc.authorize']);
    expect(tapped.commands[1]).toMatchObject({ consumeRecordId: 9 }); // the signature consumes the entry record
    // Kept before anything else: a power cut while the barrier is open must not charge the customer again.
    expect(authorized.commands[0]).toEqual(GRANT(w.hex, rid));
    expect(authorized.commands[1]).toMatchObject({ c: 'hub.request', requestId: rid, offline: true, amountMinor: 300, op: { type: 'fare', entry, exitStation: 'C', exitTime: T0, fareTableVersion: 4 } });
    expect(authorized.commands).toContainEqual({ c: 'nfc.delete', recordId: 9 });
    expect(authorized.state.s).toBe('passing');
  });

  it('no entry record: the maximum fare', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const { spec, authorized } = exitTo(f, w, f.card(w, { statement: f.statement(w.hex, 1000) }));
    expect(spec.amountMinor).toBe(FARES.maxFareMinor);
    expect(authorized.commands.find((c) => c.c === 'hub.request')).toMatchObject({ op: { entry: null } });
  });

  it('opened, then the card leaves before signing: an incident, the entry record stays on the wallet', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const card = f.card(w, { admission: { recordId: 9, message: f.admission(w.hex, 'A', T0 - 60_000) }, statement: f.statement(w.hex, 1000) });
    const tapped = run(exitCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }]);
    const lost = run(exitCtx(f), [{ e: 'card.lost' }], tapped.state);
    expect(lost.commands[0]).toMatchObject({ c: 'incident', kind: 'unsigned-passage', wallet: w.hex, amountMinor: 300 });
    expect(kinds(lost.commands)).not.toContain('nfc.delete');
    expect(kinds(lost.commands)).not.toContain('hub.request');
    // An authorization by another key than the license's is no payment either.
    const other = f.wallet();
    const spoofed = run(exitCtx(f), [{ e: 'wallet.authorized', authorization: f.authorize(other, { purpose: 'fare', amountMinor: 300, currency: 'EUR', lines: [] }) }], tapped.state);
    expect(spoofed.commands[0]).toMatchObject({ c: 'incident' });
  });

  it('a fare neither the offline credit nor the statement covers waits for a verified hub approval', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet({ offlineLimitMinor: 0 });
    const card = f.card(w, { admission: { recordId: 9, message: f.admission(w.hex, 'A', T0 - 60_000) }, statement: f.statement(w.hex, 100) });
    const { rid, tapped, authorized } = exitTo(f, w, card);
    expect(kinds(tapped.commands)).toEqual(['nfc.authorize']);
    expect(tapped.commands[0]).not.toHaveProperty('consumeRecordId'); // kept until the hub approves
    expect(authorized.state.s).toBe('exit.settling');
    expect(kinds(authorized.commands)).not.toContain('gate.open');
    expect(authorized.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: false });
    const forged = f.result(rid, {}, new Fixture().hub);
    expect(kinds(run(exitCtx(f), [{ e: 'hub.result', result: forged }], authorized.state).commands)).not.toContain('gate.open');
    const declined = run(exitCtx(f), [{ e: 'hub.result', result: f.result(rid, { status: 'declined', code: 'INSUFFICIENT_FUNDS', withdrawal: 'none' }) }], authorized.state);
    expect(kinds(declined.commands)).toContain('gate.deny');
    const approved = run(exitCtx(f), [{ e: 'hub.result', result: f.result(rid) }], authorized.state);
    expect(approved.commands.slice(0, 2)).toEqual([GRANT(w.hex, rid), { c: 'gate.open' }]);
    expect(approved.commands).toContainEqual({ c: 'nfc.delete', recordId: 9 });
  });

  it('offline and not covered: stays closed without asking the wallet; offline within the license limit: opens', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet({ offlineLimitMinor: 1000 });
    const p = f.wallet({ offlineLimitMinor: 0 });
    const poor = run(exitCtx(f, { online: false }), [{ e: 'tap', card: f.card(p, { statement: f.statement(p.hex, 100) }), requestId: f.id(), recordId: f.id() }]);
    expect(kinds(poor.commands)).toContain('gate.deny');
    expect(kinds(poor.commands)).not.toContain('nfc.authorize');
    const noStatement = run(exitCtx(f, { online: false }), [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }]);
    expect(noStatement.commands[0]).toEqual({ c: 'gate.open' });
  });

  it('entered on a ticket: opens without a fare, and reports the exit (the hub claims the record) after the barrier and the delete', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const ticketId = f.id();
    const record = f.admission(w.hex, 'A', T0 - 60_000, ticketId);
    const card = f.card(w, { admission: { recordId: 4, message: record } });
    const requestId = f.id();
    const r = run(exitCtx(f), [{ e: 'tap', card, requestId, recordId: f.id() }], GATE_IDLE, T0 + 5);
    expect(r.commands.slice(0, 2)).toEqual([GRANT(w.hex, ticketId, 'ticket'), { c: 'gate.open' }]);
    expect(kinds(r.commands)).toEqual(['paidExit.grant', 'gate.open', 'nfc.delete', 'admission.used', 'nfc.release', 'display', 'hub.request']);
    // Through the outbox as decided here (the barrier is open): no money, the record and the exit's time and station.
    expect(r.commands.find((c) => c.c === 'hub.request')).toEqual({
      c: 'hub.request', requestId, op: { type: 'ticket.exit', entry: record, exitStation: 'C', exitTime: T0 + 5 }, offline: true, wallet: w.hex, amountMinor: 0,
    });
    expect(kinds(r.commands)).not.toContain('nfc.authorize');
    // A full outbox lets the ticket holder out all the same, unreported (the write would fail after the barrier opened).
    const full = exitCtx(f);
    const fullCtx = { ...full, usage: { ...full.usage, outboxRoom: () => 0 } };
    const unreported = run(fullCtx, [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }], GATE_IDLE, T0 + 5);
    expect(kinds(unreported.commands)).toEqual(['paidExit.grant', 'gate.open', 'nfc.delete', 'admission.used', 'nfc.release', 'display']);
  });

  it('hub silent while a fare waits: abandon and stay closed', () => {
    const f = new Fixture('gate-out');
    const s = { s: 'exit.settling', requestId: f.id(), wallet: f.wallet().hex, entry: null, untilMs: T0 + 100 } satisfies GateState;
    const r = gateStep(s, { e: 'tick' }, exitCtx(f), T0 + 100);
    expect(r.commands[0]).toEqual({ c: 'hub.abandon', requestId: s.requestId });
    expect(kinds(r.commands)).not.toContain('gate.open');
  });

  it('"retry later" from the hub while a fare waits: given up on at once (hub.abandon: a late approval grants a paid exit), closed', () => {
    const f = new Fixture('gate-out');
    const s = { s: 'exit.settling', requestId: f.id(), wallet: f.wallet().hex, entry: null, untilMs: T0 + 3000 } satisfies GateState;
    const busy = gateStep(s, { e: 'hub.result', result: f.result(s.requestId, { status: 'declined', code: 'UNAVAILABLE', withdrawal: 'none' }) }, exitCtx(f), T0);
    const error = gateStep(s, { e: 'hub.error', requestId: s.requestId, code: 'TIMEOUT' }, exitCtx(f), T0);
    for (const r of [busy, error]) {
      expect(r.state.s).toBe('idle');
      expect(r.commands[0]).toEqual({ c: 'hub.abandon', requestId: s.requestId });
      expect(kinds(r.commands)).not.toContain('gate.open');
    }
    expect(kinds(gateStep(s, { e: 'hub.error', requestId: s.requestId, code: 'INSUFFICIENT_FUNDS' }, exitCtx(f), T0).commands)).not.toContain('hub.abandon');
  });

  it('statement not read yet and the offline credit is short: reads it, then decides', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet({ offlineLimitMinor: 100 });
    const tapped = run(exitCtx(f), [{ e: 'tap', card: f.card(w, { statement: undefined }), requestId: f.id(), recordId: f.id() }]);
    expect(tapped.commands).toEqual([{ c: 'nfc.readStatement' }]);
    const rich = run(exitCtx(f), [{ e: 'card.statement', statement: f.statement(w.hex, 5000) }], tapped.state);
    expect(kinds(rich.commands).slice(0, 2)).toEqual(['gate.open', 'nfc.authorize']);
    const none = run(exitCtx(f), [{ e: 'card.statement', statement: null }], tapped.state);
    expect(kinds(none.commands)).toEqual(['nfc.authorize']); // online: the hub decides
    const lost = run(exitCtx(f), [{ e: 'card.lost' }], tapped.state);
    expect(kinds(lost.commands)).toContain('gate.deny');
  });

  it('the customer walks through before the wallet finished signing: the passage still counts', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const rid = f.id();
    const tapped = run(exitCtx(f), [{ e: 'tap', card: f.card(w), requestId: rid, recordId: f.id() }, { e: 'passage' }]);
    expect(tapped.state).toMatchObject({ s: 'exit.authorizing', passed: true });
    const done = run(exitCtx(f), [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'fare', amountMinor: 600, currency: 'EUR', lines: [] }) }], tapped.state);
    expect(done.state.s).toBe('idle');
    expect(done.commands.find((c) => c.c === 'hub.request')).toMatchObject({ requestId: rid, offline: true });
    expect(done.commands.at(-1)).toEqual({ c: 'receipt', requestId: rid, outcome: 'passed' });
  });

  it('after a late approval the wallet leaves as paid; while an earlier fare is unanswered it is not charged again', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const card = f.card(w, { admission: { recordId: 5, message: f.admission(w.hex, 'A', T0 - 60_000) } });
    const waiting = run(exitCtx(f, { usage: { ...f.usage(), abandonedFor: () => true } }), [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }]);
    expect(kinds(waiting.commands)).toContain('gate.deny');
    expect(kinds(waiting.commands)).not.toContain('nfc.authorize');
    const paid = run(exitCtx(f, { usage: { ...f.usage(), paidExit: () => ({ requestId: 'r1', kind: 'fare', refundable: false }) } }), [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }]);
    expect(paid.commands[0]).toEqual({ c: 'gate.open' });
    expect(paid.commands).toContainEqual({ c: 'nfc.delete', recordId: 5 });
    expect(kinds(paid.commands)).not.toContain('hub.request');
    // The grant is used up once the customer is through, not at the tap.
    expect(kinds(paid.commands)).not.toContain('paidExit.consume');
    expect(run(exitCtx(f), [{ e: 'passage' }], paid.state).commands).toContainEqual({ c: 'paidExit.consume', wallet: w.hex, requestId: 'r1' });
  });
});

describe('gate: exit — a license that expired during the trip', () => {
  it('is judged at the verified entry of this trip: the customer is not locked in; without such an entry it is refused', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet({ notAfter: T0 - 10 * 60_000 }); // expired 10 minutes ago
    const entered = f.admission(w.hex, 'A', T0 - 50 * 60_000); // while it was valid
    const out = run(exitCtx(f), [{ e: 'tap', card: f.card(w, { admission: { recordId: 9, message: entered } }), requestId: f.id(), recordId: f.id() }]);
    expect(kinds(out.commands)).not.toContain('gate.deny');
    expect(out.commands.find((c) => c.c === 'nfc.authorize')).toMatchObject({ offer: { purpose: 'fare', amountMinor: 300 } });
    for (const admission of [null, { recordId: 9, message: f.admission(w.hex, 'A', T0 - 5 * 60_000) }, { recordId: 9, message: f.admission(w.hex, 'A', T0 - FARES.maxTripMs - 60_000) }]) {
      const refused = run(exitCtx(f), [{ e: 'tap', card: f.card(w, { admission }), requestId: f.id(), recordId: f.id() }]);
      expect(refused.commands).toContainEqual(expect.objectContaining({ c: 'display', text: 'wallet refused: CERT_EXPIRED' }));
    }
  });
});

describe('gate: exit — admission records must verify (an enrolled gate signed them)', () => {
  it('a forged ticket record (any key, unknown gate, or no gate list yet) is no record: no free exit, the maximum fare, entry null', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const stranger = generateKeyPair();
    const body = { recordId: f.id(), wallet: w.hex, station: 'C', time: T0 - 60_000, ticketId: f.id() };
    const cases: [string, ReturnType<Fixture['admission']>, TerminalContext][] = [
      // Claims the enrolled entry gate but is signed by another key.
      ['bad signature', signMessage('gate.admission', { ...body, terminalId: 'gate-in' }, stranger.secretKey), exitCtx(f)],
      // Signed by a key no enrolled gate has (the customer's own).
      ['unknown gate', signMessage('gate.admission', { ...body, terminalId: 'no-such-gate' }, stranger.secretKey), exitCtx(f)],
      // A genuine record, but its gate is not (or no longer: revoked) in the announced list.
      ['gate not announced', f.admission(w.hex, 'B', T0 - 60_000, f.id()), exitCtx(f, { gateKeys: new Map() })],
      ['no announcement yet', f.admission(w.hex, 'B', T0 - 60_000, f.id()), exitCtx(f, { gateKeys: undefined })],
    ];
    for (const [what, message, ctx] of cases) {
      const card = f.card(w, { admission: { recordId: 4, message }, statement: f.statement(w.hex, 5000) });
      const rid = f.id();
      const tapped = run(ctx, [{ e: 'tap', card, requestId: rid, recordId: f.id() }]);
      expect(tapped.state.s, what).toBe('exit.authorizing');
      // Removed from the wallet as the barrier opens (it would keep the next entry refused), once the gate has a gate list.
      expect(tapped.commands.some((c) => c.c === 'nfc.delete' && c.recordId === 4), what).toBe(ctx.gateKeys !== undefined);
      if (ctx.gateKeys !== undefined) expect(kinds(tapped.commands).slice(0, 2), what).toEqual(['gate.open', 'nfc.delete']);
      const authorize = tapped.commands.find((c) => c.c === 'nfc.authorize') as Extract<Command, { c: 'nfc.authorize' }>;
      expect(authorize.offer.amountMinor, what).toBe(FARES.maxFareMinor);
      expect(authorize, what).not.toHaveProperty('consumeRecordId');
      const signed = run(ctx, [{ e: 'wallet.authorized', authorization: f.authorize(w, authorize.offer) }], tapped.state);
      expect(signed.commands.find((c) => c.c === 'hub.request'), what).toMatchObject({ requestId: rid, amountMinor: FARES.maxFareMinor, op: { type: 'fare', entry: null } });
    }
  });

  it('a verified record prices the trip and a verified ticket record exits without a fare', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const trip = run(exitCtx(f), [{ e: 'tap', card: f.card(w, { admission: { recordId: 9, message: f.admission(w.hex, 'A', T0 - 60_000) } }), requestId: f.id(), recordId: f.id() }]);
    expect(trip.commands.find((c) => c.c === 'nfc.authorize')).toMatchObject({ offer: { amountMinor: 300 }, consumeRecordId: 9 });
    const ticket = run(exitCtx(f), [{ e: 'tap', card: f.card(w, { admission: { recordId: 4, message: f.admission(w.hex, 'A', T0 - 60_000, f.id()) } }), requestId: f.id(), recordId: f.id() }]);
    expect(kinds(ticket.commands).slice(0, 2)).toEqual(['paidExit.grant', 'gate.open']);
    expect(kinds(ticket.commands)).not.toContain('nfc.authorize');
  });
});

describe('gate: entry — a record on the wallet that an exit consumed but could not delete', () => {
  /** The wallet carries a fresh record of a trip (an hour old) written by another entrance. */
  function leftover(f: Fixture) {
    const w = f.wallet();
    const record = f.admission(w.hex, 'B', T0 - 3600_000);
    return { w, record, card: f.card(w, { admission: { recordId: 2, message: record } }) };
  }
  const consumed = (f: Fixture, checkId: string, recordId: string) => f.result(checkId, { terminalId: 'gate-in', withdrawal: 'none', amountMinor: 0, recordId });
  const notConsumed = (f: Fixture, checkId: string, recordId: string) => f.result(checkId, { terminalId: 'gate-in', status: 'declined', code: 'NOT_CONSUMED', withdrawal: 'none', amountMinor: 0, recordId });

  it('online, "already inside" asks the hub first (checking…), card kept in the field; no money, nothing queued', () => {
    const f = new Fixture('gate-in');
    const { card, record } = leftover(f);
    const checkId = f.id();
    const r = run(entryCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id(), checkId }]);
    expect(r.state).toMatchObject({ s: 'entry.checking', requestId: checkId, asked: record.body.recordId, untilMs: T0 + ENTRY_CHECK_MS });
    expect(r.commands).toEqual([{ c: 'hub.ask', requestId: checkId, op: { type: 'admission.check', entry: record } }, { c: 'display', text: 'checking…', tone: 'info' }]);
    expect(ENTRY_CHECK_MS).toBeLessThanOrEqual(1_000);
  });

  it('consumed → admitted exactly as a normal entry: a fresh record replaces the old one, then the barrier opens', () => {
    const f = new Fixture('gate-in');
    const { w, card, record } = leftover(f);
    const [checkId, recordId] = [f.id(), f.id()];
    let r = run(entryCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId, checkId }]);
    r = run(entryCtx(f), [{ e: 'hub.result', result: consumed(f, checkId, record.body.recordId) }], r.state, T0 + 40);
    expect(r.state.s).toBe('admitting');
    expect(r.commands).toEqual([{ c: 'nfc.storeAdmission', body: { recordId, wallet: w.hex, terminalId: 'gate-in', station: 'A', time: T0 + 40 } }]);
    r = run(entryCtx(f), [{ e: 'wallet.stored' }, { e: 'passage' }], r.state, T0 + 80);
    expect(kinds(r.commands)).toEqual(['gate.open', 'nfc.release', 'display']);
    expect(r.state).toEqual(GATE_IDLE);
  });

  it('consumed, with a valid ticket on the wallet: admitted on the ticket as usual (its use reported)', () => {
    const f = new Fixture('gate-in');
    const { w, record } = leftover(f);
    const ticket = f.ticket(w.hex);
    const card = f.card(w, { admission: { recordId: 2, message: record }, tickets: [{ recordId: 5, message: ticket }] });
    const [checkId, requestId] = [f.id(), f.id()];
    let r = run(entryCtx(f), [{ e: 'tap', card, requestId, recordId: f.id(), checkId }]);
    r = run(entryCtx(f), [{ e: 'hub.result', result: consumed(f, checkId, record.body.recordId) }, { e: 'wallet.stored' }], r.state);
    expect(r.commands).toContainEqual(expect.objectContaining({ c: 'hub.request', requestId, op: expect.objectContaining({ type: 'ticket.use' }) }));
    expect(requestId).not.toBe(checkId);
  });

  it('not consumed, an answer about another record, or a hub error (an older hub: MALFORMED) → "already inside"', () => {
    const f = new Fixture('gate-in');
    const { card, record } = leftover(f);
    const checkId = f.id();
    const asking = run(entryCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id(), checkId }]).state;
    for (const ev of [
      { e: 'hub.result', result: notConsumed(f, checkId, record.body.recordId) },
      { e: 'hub.result', result: consumed(f, checkId, f.id()) },
      { e: 'hub.error', requestId: checkId, code: 'MALFORMED' },
      { e: 'hub.error', requestId: checkId, code: 'UNAVAILABLE' },
    ] satisfies GateEvent[]) {
      const r = run(entryCtx(f), [ev], asking);
      expect(r.state).toEqual(GATE_IDLE);
      expect(kinds(r.commands)).toEqual(['gate.deny', 'nfc.release', 'display']);
      expect(r.commands).toContainEqual({ c: 'display', text: 'already inside', tone: 'error' });
    }
  });

  it('an unverified answer (another key, another request) is no answer: still checking until the deadline', () => {
    const f = new Fixture('gate-in');
    const { card, record } = leftover(f);
    const checkId = f.id();
    const asking = run(entryCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id(), checkId }]).state;
    const forged = f.result(checkId, { terminalId: 'gate-in', withdrawal: 'none', amountMinor: 0, recordId: record.body.recordId }, generateKeyPair());
    expect(run(entryCtx(f), [{ e: 'hub.result', result: forged }], asking).state).toEqual(asking);
    expect(run(entryCtx(f), [{ e: 'hub.result', result: consumed(f, f.id(), record.body.recordId) }], asking).state).toEqual(asking);
    // Another result for this terminal's other request is ignored too.
    expect(kinds(run(entryCtx(f), [{ e: 'hub.result', result: consumed(f, f.id(), record.body.recordId) }], asking).commands)).not.toContain('nfc.storeAdmission');
  });

  it('no answer within the deadline → "already inside"; a late answer after it changes nothing', () => {
    const f = new Fixture('gate-in');
    const { card, record } = leftover(f);
    const checkId = f.id();
    const asking = run(entryCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id(), checkId }]).state;
    expect(run(entryCtx(f), [{ e: 'tick' }], asking, T0 + ENTRY_CHECK_MS - 1).state).toEqual(asking);
    const late = run(entryCtx(f), [{ e: 'tick' }], asking, T0 + ENTRY_CHECK_MS);
    expect(late.state).toEqual(GATE_IDLE);
    expect(late.commands).toContainEqual({ c: 'display', text: 'already inside', tone: 'error' });
    const after = run(entryCtx(f), [{ e: 'hub.result', result: consumed(f, checkId, record.body.recordId) }], late.state, T0 + ENTRY_CHECK_MS + 50);
    expect(after).toEqual({ state: GATE_IDLE, commands: [] });
    // Nor does it let in the next wallet tapping meanwhile: its own tap, its own question.
    const next = leftover(f);
    const nextId = f.id();
    const asking2 = run(entryCtx(f), [{ e: 'tap', card: next.card, requestId: f.id(), recordId: f.id(), checkId: nextId }], GATE_IDLE, T0 + 2_000).state;
    expect(run(entryCtx(f), [{ e: 'hub.result', result: consumed(f, checkId, record.body.recordId) }], asking2, T0 + 2_010).state).toEqual(asking2);
  });

  it('offline, or the card removed while checking → refused at once, nothing asked', () => {
    const f = new Fixture('gate-in');
    const { card } = leftover(f);
    const offline = run(entryCtx(f, { online: false }), [{ e: 'tap', card, requestId: f.id(), recordId: f.id(), checkId: f.id() }]);
    expect(kinds(offline.commands)).toEqual(['gate.deny', 'nfc.release', 'display']);
    expect(offline.commands).toContainEqual({ c: 'display', text: 'already inside', tone: 'error' });
    const asking = run(entryCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id(), checkId: f.id() }]).state;
    const lost = run(entryCtx(f), [{ e: 'card.lost' }], asking);
    expect(lost.state).toEqual(GATE_IDLE);
    expect(kinds(lost.commands)).toEqual(['gate.deny', 'nfc.release', 'display']);
  });

  it('a record this gate remembers (unopened, unpassed) goes its own way: no question', () => {
    const f = new Fixture('gate-in');
    const w = f.wallet();
    const recordId = f.id();
    const onWallet = f.card(w, { admission: { recordId: 3, message: signMessage('gate.admission', { recordId, wallet: w.hex, terminalId: 'gate-in', station: 'A', time: T0 }, f.terminal.secretKey) } });
    f.keep([{ c: 'entry.remember', wallet: w.hex, recordId, kind: 'unpassed', untilMs: T0 + ENTRY_UNPASSED_MS }]);
    const r = run(entryCtx(f), [{ e: 'tap', card: onWallet, requestId: f.id(), recordId: f.id(), checkId: f.id() }], GATE_IDLE, T0 + 60_000);
    expect(kinds(r.commands)).toEqual(['gate.open', 'nfc.release', 'display']);
  });
});

describe('gate: exit — an admission record is good for one exit here', () => {
  it('leaving on a record remembers it; a copy written back to the wallet is no record: the maximum fare, no ticket exit', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const record = f.admission(w.hex, 'A', T0 - 60_000, f.id());
    const card = f.card(w, { admission: { recordId: 4, message: record }, statement: f.statement(w.hex, 5000) });
    const first = run(exitCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }]);
    expect(first.commands).toContainEqual({ c: 'admission.used', recordId: record.body.recordId });
    f.usedAdmissions.add(record.body.recordId); // what the runtime stores for that command
    const copy = run(exitCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }]);
    expect(copy.commands.slice(0, 2)).toEqual([{ c: 'gate.open' }, { c: 'nfc.delete', recordId: 4 }]);
    // Charged the maximum fare (the barrier may open on the local decision; the wallet signs for it).
    expect(copy.commands.find((c) => c.c === 'nfc.authorize')).toMatchObject({ offer: { amountMinor: FARES.maxFareMinor } });
  });

  it('a fare exit on a record remembers it too', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const record = f.admission(w.hex, 'A', T0 - 60_000);
    const tapped = run(exitCtx(f), [{ e: 'tap', card: f.card(w, { admission: { recordId: 9, message: record } }), requestId: f.id(), recordId: f.id() }]);
    const authorize = tapped.commands.find((c) => c.c === 'nfc.authorize') as Extract<Command, { c: 'nfc.authorize' }>;
    const signed = run(exitCtx(f), [{ e: 'wallet.authorized', authorization: f.authorize(w, authorize.offer) }], tapped.state);
    const settled = signed.state.s === 'exit.settling' ? run(exitCtx(f), [{ e: 'hub.result', result: f.result(signed.state.requestId, { status: 'approved', amountMinor: 300 }) }], signed.state) : signed;
    expect([...signed.commands, ...settled.commands]).toContainEqual({ c: 'admission.used', recordId: record.body.recordId });
  });
});

describe('gate: exit — an unproven record is removed only as the barrier opens', () => {
  it('an exit that waits for the hub keeps it (a refusal must not cost the customer the record)', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet({ offlineLimitMinor: 0 });
    const unknown = f.admission(w.hex, 'B', T0 - 60_000);
    const card = f.card(w, { admission: { recordId: 6, message: unknown }, statement: null });
    const waits = run(exitCtx(f, { gateKeys: new Map() }), [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }]);
    expect(kinds(waits.commands)).toEqual(['nfc.authorize']);
  });

  it('an exit that opens once the statement is read removes it too, as the tap\'s own decision does', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet({ offlineLimitMinor: 100 });
    const unknown = f.admission(w.hex, 'B', T0 - 60_000);
    const ctx = exitCtx(f, { gateKeys: new Map() });
    const tapped = run(ctx, [{ e: 'tap', card: f.card(w, { admission: { recordId: 6, message: unknown }, statement: undefined }), requestId: f.id(), recordId: f.id() }]);
    expect(tapped.commands).toEqual([{ c: 'nfc.readStatement' }]);
    const opened = run(ctx, [{ e: 'card.statement', statement: f.statement(w.hex, 5000) }], tapped.state);
    expect(kinds(opened.commands).slice(0, 2)).toEqual(['gate.open', 'nfc.delete']);
    expect(opened.commands).toContainEqual({ c: 'nfc.delete', recordId: 6 });
  });
});

describe('gate: exit — a wallet with an unsigned passage on file', () => {
  it('gets no local decision: online it waits for the hub, offline it is refused', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet({ offlineLimitMinor: 5000 });
    f.unsignedWallets.add(w.hex);
    const card = f.card(w, { statement: f.statement(w.hex, 5000) });
    const online = run(exitCtx(f), [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }]);
    expect(kinds(online.commands)).toEqual(['nfc.authorize']);
    expect(online.state).toMatchObject({ s: 'exit.authorizing', opened: false });
    const offline = run(exitCtx(f, { online: false }), [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }]);
    expect(kinds(offline.commands)).toContain('gate.deny');
    expect(kinds(offline.commands)).not.toContain('gate.open');
    // Another wallet still exits on the local decision.
    const other = f.wallet({ offlineLimitMinor: 5000 });
    expect(run(exitCtx(f), [{ e: 'tap', card: f.card(other), requestId: f.id(), recordId: f.id() }]).commands[0]).toEqual({ c: 'gate.open' });
  });
});

describe('gate: exit — paid but nobody passed', () => {

  it('a hub-approved fare: the next exit of the wallet is granted as paid, and no receipt yet (the grant decides it)', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet({ offlineLimitMinor: 0 });
    const card = f.card(w, { admission: { recordId: 5, message: f.admission(w.hex, 'B', T0 - 600_000) }, statement: null });
    const rid = f.id();
    let r = run(exitCtx(f), [{ e: 'tap', card, requestId: rid, recordId: f.id() }]);
    const spec = (r.commands.find((c) => c.c === 'nfc.authorize') as Extract<Command, { c: 'nfc.authorize' }>).offer;
    r = run(exitCtx(f), [{ e: 'wallet.authorized', authorization: f.authorize(w, spec) }, { e: 'hub.result', result: f.result(rid, { amountMinor: spec.amountMinor }) }], r.state);
    expect(r.commands).toContainEqual({ c: 'nfc.delete', recordId: 5 });
    r = run(exitCtx(f), [{ e: 'tick' }], r.state, AFTER_WINDOW);
    expect(r.state.s).toBe('idle');
    // The record is gone from the wallet: only the grant stands for the fare, so it is refundable.
    expect(r.commands).toEqual([GRANT(w.hex, rid)]);
    // The runtime keeps the grant (usage.paidExit): the next tap opens without a new charge.
    const next = run(exitCtx(f, { usage: { ...f.usage(), paidExit: () => ({ requestId: rid, kind: 'fare', refundable: true }) } }), [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }], GATE_IDLE, T0 + 20_000);
    // Kept while the barrier is open (a power cut then must not lose it): used up at the passage.
    expect(next.commands.slice(0, 2)).toEqual([{ c: 'gate.open' }, { c: 'nfc.release' }]);
    expect(kinds(next.commands)).not.toContain('nfc.authorize');
    // Not through again: granted again, as refundable as before; through: the fare's exit is reported.
    expect(run(exitCtx(f), [{ e: 'tick' }], next.state, T0 + 20_000 + WINDOW_MS + 1).commands).toEqual([GRANT(w.hex, rid)]);
    expect(run(exitCtx(f), [{ e: 'passage' }], next.state, T0 + 21_000).commands).toEqual([
      { c: 'receipt', requestId: rid, outcome: 'passed' },
      { c: 'paidExit.consume', wallet: w.hex, requestId: rid },
    ]);
  });

  it("waits for the barrier's whole configured window: a passage at 10 s of a 15 s window is a passage, not a free exit", () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const ctx = exitCtx(f, { gate: { station: 'C', mode: 'exit', passageTimeoutMs: 15_000 } });
    const rid = f.id();
    let r = run(ctx, [{ e: 'tap', card: f.card(w), requestId: rid, recordId: f.id() }]);
    r = run(ctx, [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'fare', amountMinor: 600, currency: 'EUR', lines: [] }) }], r.state);
    r = run(ctx, [{ e: 'tick' }], r.state, T0 + 10_001);
    expect(r.state.s).toBe('passing');
    r = run(ctx, [{ e: 'passage' }], r.state, T0 + 10_002);
    expect(r.commands).toEqual([{ c: 'receipt', requestId: rid, outcome: 'passed' }, { c: 'paidExit.consume', wallet: w.hex, requestId: rid }]);
    // Nobody within the window and its margin: then the grant.
    const quiet = run(ctx, [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }]);
    const signed = run(ctx, [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'fare', amountMinor: 600, currency: 'EUR', lines: [] }) }], quiet.state);
    expect(kinds(run(ctx, [{ e: 'tick' }], signed.state, T0 + 17_299).commands)).not.toContain('paidExit.grant');
    expect(kinds(run(ctx, [{ e: 'tick' }], signed.state, T0 + 17_300).commands)).toContain('paidExit.grant');
    // Its close delay too: the barrier is still open then, and someone may still step in.
    const slowClose = exitCtx(f, { gate: { station: 'C', mode: 'exit', passageTimeoutMs: 15_000, closeDelayMs: 5_000 } });
    const late = run(slowClose, [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }]);
    const lateSigned = run(slowClose, [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'fare', amountMinor: 600, currency: 'EUR', lines: [] }) }], late.state);
    expect(run(slowClose, [{ e: 'tick' }], lateSigned.state, T0 + 21_999).state.s).toBe('passing');
    expect(kinds(run(slowClose, [{ e: 'tick' }], lateSigned.state, T0 + 22_000).commands)).toContain('paidExit.grant');
  });

  it('a fare submitted on the local decision, a ticket trip, a paid exit: each is granted again; a passage grants nothing', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const rid = f.id();
    let r = run(exitCtx(f), [{ e: 'tap', card: f.card(w), requestId: rid, recordId: f.id() }]);
    r = run(exitCtx(f), [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'fare', amountMinor: 600, currency: 'EUR', lines: [] }) }], r.state);
    expect(r.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: true });
    expect(run(exitCtx(f), [{ e: 'tick' }], r.state, AFTER_WINDOW).commands).toEqual([GRANT(w.hex, rid)]);
    expect(run(exitCtx(f), [{ e: 'passage' }], r.state).commands).toEqual([{ c: 'receipt', requestId: rid, outcome: 'passed' }, { c: 'paidExit.consume', wallet: w.hex, requestId: rid }]);

    const ticketId = f.id();
    const ticket = run(exitCtx(f), [{ e: 'tap', card: f.card(w, { admission: { recordId: 4, message: f.admission(w.hex, 'A', T0 - 60_000, ticketId) } }), requestId: f.id(), recordId: f.id() }]);
    // A ticket trip paid no fare here: nothing to refund; through, its grant is used up.
    expect(run(exitCtx(f), [{ e: 'tick' }], ticket.state, AFTER_WINDOW).commands).toEqual([GRANT(w.hex, ticketId, 'ticket')]);
    expect(run(exitCtx(f), [{ e: 'passage' }], ticket.state).commands).toEqual([{ c: 'paidExit.consume', wallet: w.hex, requestId: ticketId }]);

    // A late-approved fare whose record the hub claimed: the grant consumes the record, so granted
    // again it stands on nothing else and is refundable; its exit, made at last, is reported.
    const record = f.admission(w.hex, 'A', T0 - 60_000);
    const onRecord = { requestId: 'r1', kind: 'fare' as const, refundable: false, onRecord: record.body.recordId };
    const paid = run(exitCtx(f, { usage: { ...f.usage(), paidExit: () => onRecord } }), [{ e: 'tap', card: f.card(w, { admission: { recordId: 6, message: record } }), requestId: f.id(), recordId: f.id() }]);
    expect(paid.commands).toContainEqual({ c: 'nfc.delete', recordId: 6 });
    // Restated at once, with the record: refundable from now on.
    expect(paid.commands.slice(0, 2)).toEqual([{ c: 'gate.open' }, GRANT(w.hex, 'r1')]);
    expect(run(exitCtx(f), [{ e: 'tick' }], paid.state, AFTER_WINDOW).commands).toEqual([GRANT(w.hex, 'r1')]);
    expect(run(exitCtx(f), [{ e: 'passage' }], paid.state).commands).toEqual([
      { c: 'receipt', requestId: 'r1', outcome: 'passed' },
      { c: 'paidExit.consume', wallet: w.hex, requestId: 'r1' },
    ]);
    // A ticket trip's grant: granted again as a ticket's; its exit names no request.
    const onTicket = run(exitCtx(f, { usage: { ...f.usage(), paidExit: () => ({ requestId: ticketId, kind: 'ticket', refundable: false }) } }), [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }]);
    expect(run(exitCtx(f), [{ e: 'tick' }], onTicket.state, AFTER_WINDOW).commands).toEqual([GRANT(w.hex, ticketId, 'ticket')]);
    expect(run(exitCtx(f), [{ e: 'passage' }], onTicket.state).commands).toEqual([{ c: 'paidExit.consume', wallet: w.hex, requestId: ticketId }]);
  });

  it('someone in the beam is going through: no grant while they stay, however long, and their passage is reported', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const rid = f.id();
    let r = run(exitCtx(f), [{ e: 'tap', card: f.card(w), requestId: rid, recordId: f.id() }]);
    // Entered while the wallet still signs (the barrier opened on the local decision).
    const early = run(exitCtx(f), [{ e: 'passage.entered' }, { e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'fare', amountMinor: 600, currency: 'EUR', lines: [] }) }], r.state);
    expect(run(exitCtx(f), [{ e: 'tick' }], early.state, AFTER_WINDOW).commands).toEqual([]);
    r = run(exitCtx(f), [{ e: 'wallet.authorized', authorization: f.authorize(w, { purpose: 'fare', amountMinor: 600, currency: 'EUR', lines: [] }) }], r.state);
    // Steps into the beam at 7 s and stands there past the barrier's window.
    r = run(exitCtx(f), [{ e: 'passage.entered' }], r.state, T0 + 7_000);
    const waiting = run(exitCtx(f), [{ e: 'tick' }], r.state, AFTER_WINDOW);
    expect(waiting.commands).toEqual([]);
    expect(waiting.state.s).toBe('passing');
    expect(run(exitCtx(f), [{ e: 'passage' }], waiting.state, T0 + 30_000).commands).toEqual([{ c: 'receipt', requestId: rid, outcome: 'passed' }, { c: 'paidExit.consume', wallet: w.hex, requestId: rid }]);
    // The barrier never reports them through: after two minutes, counted as through all the same.
    expect(run(exitCtx(f), [{ e: 'tick' }], waiting.state, T0 + 7_000 + 120_000).commands).toEqual([{ c: 'receipt', requestId: rid, outcome: 'passed' }, { c: 'paidExit.consume', wallet: w.hex, requestId: rid }]);
  });

  it('no new decision while the barrier is still open for the last one: the tap is refused, nothing charged or opened', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    let busy = true;
    const ctx = exitCtx(f, { gate: { station: 'C', mode: 'exit', barrierBusy: () => busy } });
    const refused = run(ctx, [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }]);
    expect(refused.state).toEqual(GATE_IDLE);
    expect(refused.commands).toEqual([{ c: 'gate.deny' }, { c: 'nfc.release' }, { c: 'display', text: 'please wait', tone: 'error' }]);
    busy = false;
    expect(kinds(run(ctx, [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }]).commands)).toContain('gate.open');
  });

  it('a grant resting on an admission record opens only while the wallet carries that record: gone or replaced, the wallet pays as usual', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const claimed = f.admission(w.hex, 'A', T0 - 3_600_000);
    const ctx = exitCtx(f, { usage: { ...f.usage(), paidExit: () => ({ requestId: 'r1', kind: 'fare', refundable: false, onRecord: claimed.body.recordId }) } });
    const withIt = run(ctx, [{ e: 'tap', card: f.card(w, { admission: { recordId: 3, message: claimed } }), requestId: f.id(), recordId: f.id() }]);
    expect(withIt.commands.slice(0, 2)).toEqual([{ c: 'gate.open' }, GRANT(w.hex, 'r1')]);
    // Another exit consumed it (the customer left there), then a new trip began at B: a new fare.
    for (const card of [f.card(w), f.card(w, { admission: { recordId: 4, message: f.admission(w.hex, 'B', T0 - 60_000) } })]) {
      const r = run(ctx, [{ e: 'tap', card, requestId: f.id(), recordId: f.id() }]);
      expect(kinds(r.commands)).not.toContain('paidExit.grant');
      expect(kinds(r.commands)).toContain('nfc.authorize');
    }
  });

  it('an unsigned passage that did not happen grants nothing (nothing was paid)', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    let r = run(exitCtx(f), [{ e: 'tap', card: f.card(w), requestId: f.id(), recordId: f.id() }, { e: 'card.lost' }]);
    r = run(exitCtx(f), [{ e: 'tick' }], r.state, AFTER_WINDOW);
    expect(kinds(r.commands)).not.toContain('paidExit.grant');
  });
});

describe('gate: exit — the request is priced at the time the wallet signed for', () => {
  // A tap half a second before 13:00, the wallet's signature half a second after it.
  const TAP = Date.UTC(2026, 10, 23, 12, 59, 59, 500);
  const SIGNED = TAP + 1_000;
  const BANDED = { ...FARES, timeBands: [{ fromMinute: 13 * 60, toMinute: 15 * 60, percent: 120 }] };
  type HubRequest = Extract<Command, { c: 'hub.request' }>;

  /** What the hub recomputes from the request (settlement-service: computeFare at op.exitTime). */
  function hubFare(request: HubRequest | undefined): number {
    if (request?.op.type !== 'fare') throw new Error('expected a fare request');
    const e = request.op.entry?.body;
    return computeFare(BANDED, e ? { station: e.station, time: e.time } : null, request.op.exitStation, request.op.exitTime).fareMinor;
  }

  function signedExit(f: Fixture, w: ReturnType<Fixture['wallet']>, card: ReturnType<Fixture['card']>): { offer: Extract<Command, { c: 'nfc.authorize' }>['offer']; request: HubRequest | undefined } {
    const tapped = gateStep(GATE_IDLE, { e: 'tap', card, requestId: f.id(), recordId: f.id() }, exitCtx(f, { fares: BANDED }), TAP);
    const offer = (tapped.commands.find((c) => c.c === 'nfc.authorize') as Extract<Command, { c: 'nfc.authorize' }>).offer;
    // A new fare table version announced while the wallet signs: the request names the one priced by.
    const signed = gateStep(tapped.state, { e: 'wallet.authorized', authorization: f.authorize(w, offer, SIGNED) }, exitCtx(f, { fares: BANDED, faresVersion: 5 }), SIGNED);
    return { offer, request: signed.commands.find((c): c is HubRequest => c.c === 'hub.request') };
  }

  it('across a time band edge: exitTime is the tap, so the hub computes the fare the wallet signed', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const card = f.card(w, { admission: { recordId: 9, message: f.admission(w.hex, 'A', TAP - 20 * 60_000) }, statement: f.statement(w.hex, 1000) });
    const { offer, request } = signedExit(f, w, card);
    expect(offer.amountMinor).toBe(300); // 12:59: before the band
    expect(request).toMatchObject({ amountMinor: 300, op: { exitTime: TAP, fareTableVersion: 4 } });
    expect(hubFare(request)).toBe(300);
  });

  it('a trip that passes maxTripMs while the wallet signs: still the fare of the tap', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet();
    const card = f.card(w, { admission: { recordId: 9, message: f.admission(w.hex, 'A', TAP - FARES.maxTripMs + 500) }, statement: f.statement(w.hex, 1000) });
    const { offer, request } = signedExit(f, w, card);
    expect(offer.amountMinor).toBe(300);
    expect(hubFare(request)).toBe(300);
  });

  it('the statement is read after the band began: priced at the tap all the same', () => {
    const f = new Fixture('gate-out');
    const w = f.wallet({ offlineLimitMinor: 100 });
    const card = f.card(w, { admission: { recordId: 9, message: f.admission(w.hex, 'A', TAP - 20 * 60_000) }, statement: undefined });
    const ctx = exitCtx(f, { fares: BANDED });
    const tapped = gateStep(GATE_IDLE, { e: 'tap', card, requestId: f.id(), recordId: f.id() }, ctx, TAP);
    expect(tapped.commands).toEqual([{ c: 'nfc.readStatement' }]);
    const read = gateStep(tapped.state, { e: 'card.statement', statement: f.statement(w.hex, 5000) }, ctx, SIGNED);
    const offer = (read.commands.find((c) => c.c === 'nfc.authorize') as Extract<Command, { c: 'nfc.authorize' }>).offer;
    expect(offer.amountMinor).toBe(300);
    const signed = gateStep(read.state, { e: 'wallet.authorized', authorization: f.authorize(w, offer, SIGNED + 500) }, ctx, SIGNED + 500);
    const request = signed.commands.find((c): c is HubRequest => c.c === 'hub.request');
    expect(request).toMatchObject({ amountMinor: 300, op: { exitTime: TAP } });
    expect(hubFare(request)).toBe(300);
  });
});
