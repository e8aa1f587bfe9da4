// seed 004 claim 14 for sales decided without the hub: an offline sale already happened (the goods
// are gone), so the hub settles it, and judges the customer afterwards — by the restrictions of the
// catalog the machine priced it by and of the latest one, and by the blocklist. A customer it
// would have refused online is the operator's incident (`restricted-offline`), logged at warn.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FARES, SNACKS, admissionRecord, authorize, enroll, fundedWallet, openHubFixture, purchase, readResult, signRequest, type HubFixture, type TestTerminal, type TestWallet } from './kit.ts';

const HOUR = 3600_000;
const BEER = [{ sku: 'beer', qty: 1, unitMinor: 400 }];
const hubLog: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => void hubLog.push(JSON.parse(line) as { level: number; msg: string }) });
let fx: HubFixture;
let pos: TestTerminal;
/** The catalog the POS last heard of before it went offline: beer not yet age-restricted. */
let v1: number;

beforeAll(async () => {
  fx = await openHubFixture({ logger });
  pos = await enroll(fx.hub, 'pos-bar', 'pos', 'snacks');
  const beerForAll = SNACKS.articles.map((a) => {
    if (a.sku !== 'beer') return a;
    const { restriction: _minAge, ...unrestricted } = a;
    return unrestricted;
  });
  v1 = fx.hub.importCatalog({ ...SNACKS, articles: beerForAll }).version;
});
afterAll(async () => {
  expect((await fx.hub.verifyLedger()).discrepancies).toEqual([]);
  await fx.cleanup();
});

const funded = (options: Parameters<typeof fundedWallet>[3]) => fundedWallet(fx, pos, 2000, { offlineLimitMinor: 1000, ...options });
const balance = async (w: TestWallet) => (await fx.hub.showAccount(w.id))?.account.balanceMinor;
const incidentOf = (requestId: string) => fx.hub.incidents().find((i) => i.requestId === requestId);

describe('offline sales and customer restrictions', () => {
  it('beer restricted to 18+ in catalog v2, sold offline by a POS on v1 to a 16-year-old: settled, and an incident for the operator', async () => {
    const minor = await funded({ ageOver: 16 });
    const adult = await funded({ ageOver: 18 });
    const toMinor = purchase(pos, minor, BEER, fx.now, { offline: true, catalogVersion: v1 });
    const toAdult = purchase(pos, adult, BEER, fx.now, { offline: true, catalogVersion: v1 });
    fx.advance(HOUR);
    expect(fx.hub.importCatalog(SNACKS).version).toBeGreaterThan(v1); // beer: minAge 18
    fx.advance(HOUR);
    hubLog.length = 0;
    // The POS is back and uploads what it sold.
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, toMinor.bytes))).toMatchObject({ status: 'approved', amountMinor: 400 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, toAdult.bytes))).toMatchObject({ status: 'approved', amountMinor: 400 });
    expect(await balance(minor)).toBe(1600);
    expect(incidentOf(toMinor.requestId)).toEqual({
      requestId: toMinor.requestId,
      terminalId: pos.id,
      wallet: minor.id,
      kind: 'restricted-offline',
      amountMinor: 400,
      currency: 'EUR',
      detail: 'purchase decided without the hub, customer restricted: RESTRICTED (beer: age 18+ required)',
      timeMs: fx.now - 2 * HOUR,
      recordedMs: fx.now,
    });
    expect(incidentOf(toAdult.requestId)).toBeUndefined();
    expect(hubLog).toContainEqual(expect.objectContaining({ level: 40, requestId: toMinor.requestId, kind: 'restricted-offline', code: 'RESTRICTED' }));
    // A re-upload is a retry: the same answer, one incident.
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, toMinor.bytes)).status).toBe('approved');
    expect(fx.hub.incidents().filter((i) => i.wallet === minor.id)).toHaveLength(1);
    // Online, the same sale is refused.
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, minor, BEER, fx.now).bytes)).code).toBe('RESTRICTED');
  });

  it('a restriction the machine knew (its own catalog version) counts too, and a blocklisted wallet is an incident', async () => {
    const guest = await funded({});
    const stolen = await funded({});
    const meal = purchase(pos, guest, [{ sku: 'staff-meal', qty: 1, unitMinor: 300 }], fx.now, { offline: true });
    const cola = purchase(pos, stolen, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now, { offline: true });
    fx.hub.blocklistAdd(stolen.id, 'stolen');
    fx.advance(HOUR);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, meal.bytes)).status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cola.bytes)).status).toBe('approved');
    expect(incidentOf(meal.requestId)).toMatchObject({ kind: 'restricted-offline', wallet: guest.id, amountMinor: 300, detail: expect.stringContaining('RESTRICTED (staff-meal: member of staff required)') });
    expect(incidentOf(cola.requestId)).toMatchObject({ kind: 'restricted-offline', wallet: stolen.id, amountMinor: 250, detail: expect.stringContaining('BLOCKLISTED') });
    expect(await balance(stolen)).toBe(1750);
  });

  it('a fare a gate let through offline for a blocklisted wallet: settled (the trip happened), and an incident; a listed wallet online is refused', async () => {
    fx.hub.importFares(FARES);
    const gateIn = await enroll(fx.hub, 'gate-in', 'gate', 'transit');
    const gateOut = await enroll(fx.hub, 'gate-out', 'gate', 'transit');
    const fareOf = (w: TestWallet, offline: boolean) => {
      const entry = admissionRecord(gateIn, w, 'central', fx.now - 600_000);
      const op = { type: 'fare' as const, authorization: authorize(gateOut, w, 'fare', 350, [], fx.now), license: w.license, entry, exitStation: 'harbor', exitTime: fx.now };
      return signRequest(gateOut, op, fx.now, { offline });
    };
    const stolen = await funded({});
    const honest = await funded({});
    const stolenTrip = fareOf(stolen, true);
    const honestTrip = fareOf(honest, true);
    fx.hub.blocklistAdd(stolen.id, 'stolen');
    fx.advance(HOUR);
    hubLog.length = 0;
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, stolenTrip.bytes))).toMatchObject({ status: 'approved', amountMinor: 350 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, honestTrip.bytes))).toMatchObject({ status: 'approved', amountMinor: 350 });
    expect(incidentOf(stolenTrip.requestId)).toMatchObject({ kind: 'restricted-offline', terminalId: 'gate-out', wallet: stolen.id, amountMinor: 350, detail: expect.stringMatching(/^fare decided without the hub.*BLOCKLISTED/) });
    expect(incidentOf(honestTrip.requestId)).toBeUndefined();
    expect(hubLog).toContainEqual(expect.objectContaining({ level: 40, requestId: stolenTrip.requestId, code: 'BLOCKLISTED', msg: 'incident: an offline passage went to a customer the hub would have refused' }));
    expect(await balance(stolen)).toBe(2000 - 350);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareOf(stolen, false).bytes)).code).toBe('BLOCKLISTED');
  });
});
