// A gate fare that paid nothing (declined, or refunded) gives its entry record back; the hub's
// start re-reads the most recent fares from the ledger to restore the claims a crash may have
// taken from the registry, and must not claim such a record again (the customer's next exit on
// it would be a REPLAY). The wallet's authorization stays claimed all the same.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAID_EXIT_UNUSED, type Envelope } from '../../protocol/index.ts';
import {
  FARES,
  SNACKS,
  admissionRecord,
  authorize,
  cashTopup,
  enroll,
  fundedWallet,
  openHubFixture,
  readResult,
  receipt,
  registryLosesWhatFollows,
  signRequest,
  type HubFixture,
  type TestTerminal,
  type TestWallet,
} from './kit.ts';

let fx: HubFixture;
let pos: TestTerminal;
let gateIn: TestTerminal;
let gateOut: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-1', 'pos', 'snacks');
  gateIn = await enroll(fx.hub, 'gate-in', 'gate', 'transit');
  gateOut = await enroll(fx.hub, 'gate-out', 'gate', 'transit');
  fx.hub.importCatalog(SNACKS);
  fx.hub.importFares(FARES);
});

afterAll(async () => {
  const check = await fx.hub.verifyLedger();
  expect(check.discrepancies).toEqual([]);
  await fx.cleanup();
});

const funded = (amountMinor: number) => fundedWallet(fx, pos, amountMinor);

const entryRecord = (w: TestWallet, station: string, time: number) => admissionRecord(gateIn, w, station, time);

/** A fare request; `authorization` given: the same wallet authorization sent again under a new request id. */
function fareRequest(w: TestWallet, entry: Envelope<'gate.admission'>, fareMinor: number, options: { offline?: boolean; authorization?: Envelope<'wallet.authorization'> } = {}) {
  const authorization = options.authorization ?? authorize(gateOut, w, 'fare', fareMinor, [], fx.now);
  const op = { type: 'fare' as const, authorization, license: w.license, entry, exitStation: 'harbor', exitTime: fx.now };
  return { ...signRequest(gateOut, op, fx.now, { offline: options.offline ?? false }), authorization };
}

async function fare(request: { bytes: Uint8Array }): Promise<{ status: string; code: string | undefined }> {
  const r = readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, request.bytes));
  return { status: r.status, code: r.code };
}

/** The exit gate reports the customer through (a record the fare claimed then pays no other exit). */
async function passed(request: { requestId: string }): Promise<void> {
  expect(await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, request.requestId, 'passed', fx.now))).toMatchObject({ status: 'recorded' });
}

describe('an entry record given back stays given back after a restart', () => {
  it('a declined fare gives its entry record back — and still does after a clean restart; its authorization stays used', async () => {
    const w = await funded(100);
    const entry = entryRecord(w, 'central', fx.now - 20 * 60_000);
    const declined = fareRequest(w, entry, 350);
    expect((await fare(declined)).code).toBe('INSUFFICIENT_FUNDS');
    await fx.reopen();
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 1000, fx.now).bytes)).status).toBe('approved');
    // The declined fare's authorization, under another request id: claimed before the restart, still.
    expect((await fare(fareRequest(w, entry, 350, { authorization: declined.authorization }))).code).toBe('REPLAY');
    const paid = fareRequest(w, entry, 350);
    expect(await fare(paid)).toEqual({ status: 'approved', code: undefined });
    await passed(paid);
    // Paid now (and passed there): the record is used, across a restart too.
    await fx.reopen();
    expect((await fare(fareRequest(w, entry, 350))).code).toBe('REPLAY');
  });

  it('a refunded fare (unused paid exit) gives its entry record back — and still does after a clean restart', async () => {
    const w = await funded(2000);
    const kept = entryRecord(w, 'central', fx.now - 10 * 60_000);
    const paid = fareRequest(w, kept, 350);
    expect((await fare(paid)).status).toBe('approved');
    expect(await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, paid.requestId, 'failed', fx.now, PAID_EXIT_UNUSED))).toMatchObject({ status: 'refunded' });
    await fx.reopen();
    expect((await fare(fareRequest(w, kept, 350, { authorization: paid.authorization }))).code).toBe('REPLAY');
    const again = fareRequest(w, kept, 350, { offline: true });
    expect(await fare(again)).toEqual({ status: 'approved', code: undefined });
    await passed(again);
    await fx.reopen();
    expect((await fare(fareRequest(w, kept, 350))).code).toBe('REPLAY');
  });

  it("an operator's refund of a fare gives its entry record back — after a clean restart too, when the fare's row is before the seq the restart restores from and the refund's after it", async () => {
    const w = await funded(2000);
    const kept = entryRecord(w, 'central', fx.now - 10 * 60_000);
    const paid = fareRequest(w, kept, 350);
    expect((await fare(paid)).status).toBe('approved');
    await fx.reopen();
    // The refund's row comes after the seq the restart set the registry to; the fare's before it.
    expect(await fx.hub.refund(paid.requestId)).toMatchObject({ status: 'approved' });
    await fx.reopen();
    const again = fareRequest(w, kept, 350);
    expect(await fare(again)).toEqual({ status: 'approved', code: undefined });
    await passed(again);
    expect((await fare(fareRequest(w, kept, 350))).code).toBe('REPLAY');
  });

  it('a record given back and claimed again by a later fare is that fare\'s after a power cut took both claims: its refund gives it back', async () => {
    const w = await funded(100);
    const entry = entryRecord(w, 'central', fx.now - 20 * 60_000);
    const putBack = await registryLosesWhatFollows(fx, 'before-fares');
    expect((await fare(fareRequest(w, entry, 350))).code).toBe('INSUFFICIENT_FUNDS');
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 1000, fx.now).bytes)).status).toBe('approved');
    const second = fareRequest(w, entry, 350);
    expect((await fare(second)).status).toBe('approved');
    await putBack();
    // Both rows carry the record, restored in seq order: the declined one must not take it first.
    expect((await fare(fareRequest(w, entry, 350))).code).toBe('REPLAY');
    expect(await fx.hub.refund(second.requestId)).toMatchObject({ status: 'approved' });
    expect(await fare(fareRequest(w, entry, 350))).toEqual({ status: 'approved', code: undefined });
  });
});
