// A license that expires during a trip must not lock its customer in: the exit fare of a trip with
// a verified admission record is judged by the license as it was at the entry (the record's time),
// unless the wallet is revoked or blocklisted. Everything else still needs a license valid now.
// Real hub, real SQLite; the gate's side is the terminal's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, newRequestId, signMessage, type Envelope } from '../../protocol/index.ts';
import {
  FARES,
  SNACKS,
  admissionRecord,
  authorize,
  enroll,
  fundedWallet,
  openHubFixture,
  purchase,
  readResult,
  signRequest,
  type HubFixture,
  type TestTerminal,
  type TestWallet,
} from './kit.ts';

const MIN = 60_000;
let fx: HubFixture;
let pos: TestTerminal;
let gateIn: TestTerminal;
let gateOut: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-kiosk', 'pos', 'snacks');
  gateIn = await enroll(fx.hub, 'gate-in', 'gate', 'transit');
  gateOut = await enroll(fx.hub, 'gate-out', 'gate', 'transit');
  fx.hub.importCatalog(SNACKS);
  fx.hub.importFares(FARES);
});
afterAll(async () => {
  await fx.cleanup();
});

/** A wallet whose license expires an hour from now. */
const expiringWallet = () => fundedWallet(fx, pos, 5000, { validityMs: 60 * MIN });

function exitFare(w: TestWallet, entry: Envelope<'gate.admission'> | null, fareMinor: number, offline = false) {
  const authorization = authorize(gateOut, w, 'fare', fareMinor, [], fx.now);
  return signRequest(gateOut, { type: 'fare', authorization, license: w.license, entry, exitStation: 'harbor', exitTime: fx.now }, fx.now, { offline });
}
const settle = async (req: { bytes: Uint8Array }) => readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, req.bytes));

describe('a license that expires during a trip', () => {
  it('pays the exit fare of a trip entered while it was valid (online and decided at the gate); not without a record, nor on a record made after it expired', async () => {
    const w = await expiringWallet();
    const entry = admissionRecord(gateIn, w, 'central', fx.now + 50 * MIN);
    const offlineEntry = admissionRecord(gateIn, w, 'central', fx.now + 55 * MIN);
    fx.advance(70 * MIN); // the license expired 10 minutes ago, during the trip
    expect(await settle(exitFare(w, entry, 350))).toMatchObject({ status: 'approved', amountMinor: 350 });
    expect(await settle(exitFare(w, offlineEntry, 350, true))).toMatchObject({ status: 'approved', amountMinor: 350 });
    expect(await settle(exitFare(w, null, 800))).toMatchObject({ status: 'declined', code: 'CERT_EXPIRED' });
    // A record older than the longest trip (one never claimed, say a ticket trip's) stretches nothing.
    const stale = admissionRecord(gateIn, w, 'central', fx.now - FARES.maxTripMs - MIN);
    expect(await settle(exitFare(w, stale, FARES.maxFareMinor))).toMatchObject({ status: 'declined', code: 'CERT_EXPIRED' });
    const afterExpiry = admissionRecord(gateIn, w, 'central', fx.now - 5 * MIN);
    expect(await settle(exitFare(w, afterExpiry, 350))).toMatchObject({ status: 'declined', code: 'CERT_EXPIRED' });
    // Anything else needs a license valid now.
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes)).code).toBe('CERT_EXPIRED');
    expect((await fx.hub.showAccount(w.id))?.account.balanceMinor).toBe(5000 - 700);
  });

  it("refuses it for a blocklisted or revoked wallet, and on a record that is not a gate's or not this wallet's", async () => {
    const listed = await expiringWallet();
    const revoked = await expiringWallet();
    const other = await expiringWallet();
    const entries = [listed, revoked, other].map((w) => admissionRecord(gateIn, w, 'central', fx.now + 30 * MIN));
    // An entry record signed by a key no enrolled gate holds, claiming gate-in.
    const forged = signMessage('gate.admission', { recordId: newRequestId(), wallet: other.id, terminalId: gateIn.id, station: 'central', time: fx.now + 30 * MIN }, generateKeyPair().secretKey);
    fx.advance(70 * MIN);
    fx.hub.blocklistAdd(listed.id, 'stolen');
    fx.hub.revokeWallet(revoked.id);
    expect(await settle(exitFare(listed, entries[0] as Envelope<'gate.admission'>, 350))).toMatchObject({ status: 'declined', code: 'CERT_EXPIRED' });
    expect(await settle(exitFare(revoked, entries[1] as Envelope<'gate.admission'>, 350))).toMatchObject({ status: 'declined', code: 'CERT_EXPIRED' });
    expect(await settle(exitFare(other, entries[0] as Envelope<'gate.admission'>, 350))).toMatchObject({ status: 'declined', code: 'CERT_EXPIRED' });
    expect(await settle(exitFare(other, forged, 350))).toMatchObject({ status: 'declined', code: 'BAD_SIGNATURE' });
    const byPos = admissionRecord(pos, other, 'central', fx.now - 40 * MIN);
    expect(await settle(exitFare(other, byPos, 350))).toMatchObject({ status: 'declined', code: 'CERT_EXPIRED' });
    expect(await settle(exitFare(other, entries[2] as Envelope<'gate.admission'>, 350))).toMatchObject({ status: 'approved', amountMinor: 350 });
  });
});
