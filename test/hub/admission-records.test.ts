// Admission records the hub hears of outside a fare (hub/service/admission-records.ts): an exit
// gate's report of a ticket trip's exit (`ticket.exit`, recorded as the record's claim: a second
// exit on it is a REPLAY and the operator's incident), and an entrance's question on its "already
// inside" path (`admission.check`: was this record consumed by an exit the hub knows?). A real hub
// on a temp data dir, requests signed as the terminals sign them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAID_EXIT_UNUSED, generateKeyPair, newRequestId, signMessage, type Envelope } from '../../protocol/index.ts';
import { MAX_ADMISSION_CHECKS_PER_MINUTE } from '../../hub/service/admission-records.ts';
import {
  FARES,
  admissionRecord,
  authorize,
  enroll,
  fundedWallet,
  openHubFixture,
  readResult,
  receipt,
  signRequest,
  type HubFixture,
  type TestTerminal,
  type TestWallet,
} from './kit.ts';

let fx: HubFixture;
let pos: TestTerminal;
let gateIn: TestTerminal;
let gateOut: TestTerminal;
let gateOut2: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-1', 'pos', 'snacks');
  gateIn = await enroll(fx.hub, 'gate-in', 'gate', 'transit');
  gateOut = await enroll(fx.hub, 'gate-out', 'gate', 'transit');
  gateOut2 = await enroll(fx.hub, 'gate-out-2', 'gate', 'transit');
  fx.hub.importFares(FARES);
});

afterAll(async () => {
  const check = await fx.hub.verifyLedger();
  expect(check.discrepancies).toEqual([]);
  await fx.cleanup();
});

/** central → harbor: 150 base + 2 zones × 100. */
const FARE = 350;

const funded = (amountMinor: number) => fundedWallet(fx, pos, amountMinor);

function ticketRecord(w: TestWallet, time: number): Envelope<'gate.admission'> {
  return signMessage('gate.admission', { recordId: newRequestId(), wallet: w.id, terminalId: gateIn.id, station: 'central', time, ticketId: newRequestId() }, gateIn.keyPair.secretKey);
}

async function fare(w: TestWallet, entry: Envelope<'gate.admission'>) {
  const authorization = authorize(gateOut, w, 'fare', FARE, [], fx.now);
  const request = signRequest(gateOut, { type: 'fare', authorization, license: w.license, entry, exitStation: 'harbor', exitTime: fx.now }, fx.now);
  return { ...request, result: readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, request.bytes)) };
}

function ticketExit(gate: TestTerminal, entry: Envelope<'gate.admission'>) {
  // Reported through the outbox as what the gate decided without the hub (the barrier opened).
  return signRequest(gate, { type: 'ticket.exit', entry, exitStation: 'harbor', exitTime: fx.now }, fx.now, { offline: true });
}

/** The entrance's question about the record found on the wallet. */
async function check(entry: Envelope<'gate.admission'>, from: TestTerminal = gateIn, extra: { offline?: boolean } = {}) {
  const request = signRequest(from, { type: 'admission.check', entry }, fx.now, extra);
  const bytes = await fx.hub.handleRequest(from.id, request.bytes);
  return { ...request, answer: bytes, result: readResult(fx.hub, bytes) };
}

async function balance(w: TestWallet): Promise<number | undefined> {
  return (await fx.hub.showAccount(w.id))?.account.balanceMinor;
}

describe('admission.check: was the record on the wallet consumed by an exit the hub knows?', () => {
  it('a record a fare claimed (approved) is consumed: approved for 0, naming the record, no money; a resend gets the same bytes', async () => {
    const w = await funded(1000);
    const entry = admissionRecord(gateIn, w, 'central', fx.now - 20 * 60_000);
    expect((await fare(w, entry)).result).toMatchObject({ status: 'approved', amountMinor: FARE });
    fx.advance(60_000);
    const before = await balance(w);
    const q = await check(entry);
    expect(q.result).toMatchObject({ requestId: q.requestId, terminalId: gateIn.id, status: 'approved', withdrawal: 'none', amountMinor: 0, recordId: entry.body.recordId });
    expect(q.result.code).toBeUndefined();
    expect(await balance(w)).toBe(before);
    // Idempotent by request id, as every request.
    fx.advance(1_000);
    expect(Buffer.from(await fx.hub.handleRequest(gateIn.id, q.bytes)).equals(Buffer.from(q.answer))).toBe(true);
  });

  it('a record whose fare was declined, or refunded, is not consumed (the fare gave it back): NOT_CONSUMED', async () => {
    const poor = await funded(100);
    const entry = admissionRecord(gateIn, poor, 'central', fx.now - 20 * 60_000);
    expect((await fare(poor, entry)).result).toMatchObject({ status: 'declined', code: 'INSUFFICIENT_FUNDS' });
    expect((await check(entry)).result).toMatchObject({ status: 'declined', code: 'NOT_CONSUMED', amountMinor: 0, recordId: entry.body.recordId });

    const w = await funded(1000);
    const refunded = admissionRecord(gateIn, w, 'central', fx.now - 20 * 60_000);
    const paid = await fare(w, refunded);
    expect(paid.result.status).toBe('approved');
    expect((await check(refunded)).result.status).toBe('approved');
    // Its paid exit expired unused (the customer left elsewhere and paid there): refunded, record given back.
    expect(await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, paid.requestId, 'failed', fx.now, PAID_EXIT_UNUSED))).toMatchObject({ status: 'refunded' });
    expect((await check(refunded)).result).toMatchObject({ status: 'declined', code: 'NOT_CONSUMED' });
  });

  it('a record never seen by any exit is not consumed', async () => {
    const w = await funded(0);
    const entry = admissionRecord(gateIn, w, 'central', fx.now - 5 * 60_000);
    expect((await check(entry)).result).toMatchObject({ status: 'declined', code: 'NOT_CONSUMED', recordId: entry.body.recordId });
  });

  it('only a gate may ask, and only online; a record not signed by an enrolled gate is refused', async () => {
    const w = await funded(1000);
    const entry = admissionRecord(gateIn, w, 'central', fx.now - 20 * 60_000);
    expect((await fare(w, entry)).result.status).toBe('approved');
    expect((await check(entry, pos)).result).toMatchObject({ status: 'declined', code: 'NOT_PERMITTED' });
    expect((await check(entry, gateIn, { offline: true })).result).toMatchObject({ status: 'declined', code: 'NOT_PERMITTED' });
    // The same record id under a signature its gate never made.
    const forged = signMessage('gate.admission', entry.body, generateKeyPair().secretKey);
    expect((await check(forged)).result).toMatchObject({ status: 'declined', code: 'BAD_SIGNATURE' });
    const unknownGate = signMessage('gate.admission', { ...entry.body, terminalId: 'gate-nowhere' }, generateKeyPair().secretKey);
    expect((await check(unknownGate)).result).toMatchObject({ status: 'declined', code: 'UNKNOWN_TERMINAL' });
  });

  it(`answers at most ${MAX_ADMISSION_CHECKS_PER_MINUTE} questions a minute per gate (UNAVAILABLE past it, not stored), another gate's unaffected`, async () => {
    fx.advance(61_000); // a fresh minute
    const w = await funded(0);
    const entry = admissionRecord(gateIn, w, 'central', fx.now - 60_000);
    for (let i = 0; i < MAX_ADMISSION_CHECKS_PER_MINUTE; i++) expect((await check(entry)).result.code).toBe('NOT_CONSUMED');
    const over = await check(entry);
    expect(over.result).toMatchObject({ status: 'declined', code: 'UNAVAILABLE' });
    expect((await check(entry, gateOut)).result.code).toBe('NOT_CONSUMED');
    fx.advance(60_000);
    // Not stored: the same request asked again in the next minute is answered.
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateIn.id, over.bytes))).toMatchObject({ status: 'declined', code: 'NOT_CONSUMED' });
  });
});

describe('ticket.exit: a ticket trip’s exit is the record’s claim', () => {
  it('a reported ticket exit consumes the record: the question says so, a resend of the report is a retry, no money moves', async () => {
    const w = await funded(500);
    const entry = ticketRecord(w, fx.now - 30 * 60_000);
    expect((await check(entry)).result.code).toBe('NOT_CONSUMED');
    const report = ticketExit(gateOut, entry);
    const first = await fx.hub.handleRequest(gateOut.id, report.bytes);
    expect(readResult(fx.hub, first)).toMatchObject({ requestId: report.requestId, status: 'approved', withdrawal: 'none', amountMinor: 0 });
    expect(Buffer.from(await fx.hub.handleRequest(gateOut.id, report.bytes)).equals(Buffer.from(first))).toBe(true);
    expect((await check(entry)).result).toMatchObject({ status: 'approved', recordId: entry.body.recordId });
    expect(await balance(w)).toBe(500);
  });

  it('a second exit on the same record at another gate is a REPLAY and a double-exit incident; a fare on it is a REPLAY', async () => {
    const w = await funded(1000);
    const entry = ticketRecord(w, fx.now - 30 * 60_000);
    const first = ticketExit(gateOut, entry);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, first.bytes)).status).toBe('approved');
    const incidentsBefore = fx.hub.incidents().length;
    const second = ticketExit(gateOut2, entry);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut2.id, second.bytes))).toMatchObject({ status: 'declined', code: 'REPLAY' });
    const incidents = fx.hub.incidents();
    expect(incidents).toHaveLength(incidentsBefore + 1);
    expect(incidents.find((i) => i.requestId === second.requestId)).toMatchObject({ terminalId: gateOut2.id, wallet: w.id, kind: 'double-exit', amountMinor: 0, currency: 'EUR' });
    expect(incidents.find((i) => i.requestId === second.requestId)?.detail).toContain(first.requestId);
    // The same report resent: the stored answer, no second incident.
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut2.id, second.bytes)).code).toBe('REPLAY');
    expect(fx.hub.incidents()).toHaveLength(incidentsBefore + 1);
    // A (stale-trip) fare presenting the consumed record: it paid for one exit only.
    expect((await fare(w, entry)).result).toMatchObject({ status: 'declined', code: 'REPLAY' });
    expect(await balance(w)).toBe(1000);
  });

  it('only a gate reports ticket exits, on a ticket trip’s record signed by an enrolled gate', async () => {
    const w = await funded(0);
    const entry = ticketRecord(w, fx.now - 30 * 60_000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, ticketExit(pos, entry).bytes))).toMatchObject({ status: 'declined', code: 'NOT_PERMITTED' });
    const fareRecord = admissionRecord(gateIn, w, 'central', fx.now - 30 * 60_000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, ticketExit(gateOut, fareRecord).bytes))).toMatchObject({ status: 'declined', code: 'MALFORMED' });
    const forged = signMessage('gate.admission', entry.body, generateKeyPair().secretKey);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, ticketExit(gateOut, forged).bytes))).toMatchObject({ status: 'declined', code: 'BAD_SIGNATURE' });
    // None of these claimed the record.
    expect((await check(entry)).result.code).toBe('NOT_CONSUMED');
  });

  it('a ticket exit’s claim survives a restart (on disk before its answer)', async () => {
    const w = await funded(0);
    const entry = ticketRecord(w, fx.now - 30 * 60_000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, ticketExit(gateOut, entry).bytes)).status).toBe('approved');
    await fx.reopen();
    expect((await check(entry)).result.status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut2.id, ticketExit(gateOut2, entry).bytes)).code).toBe('REPLAY');
  });
});
