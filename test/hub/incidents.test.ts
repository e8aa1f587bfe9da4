// What a terminal could not settle (an exit gate opened, the wallet never signed) is reported as a
// terminal-signed `incident` op: the hub records it once for the operator, moves no money, answers
// with a signed result, and the operator CLI lists it. Uploads of what a terminal decided without
// the hub that the hub cannot take (a ticket used twice, a request whose terminal signature fails or
// that cannot be read) are incidents too, from an authenticated terminal only, and bounded. A real
// hub on a temp data dir; the CLI as a child process.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envelope } from '../../protocol/index.ts';
import { INCIDENT_RETENTION_MS } from '../../hub/service/hub.ts';
import { MAX_UNVERIFIED_INCIDENTS_PER_HOUR } from '../../hub/service/settlement-service.ts';
import {
  FARES,
  PRODUCTS,
  SNACKS,
  authorize,
  enroll,
  fundedWallet,
  messageType,
  openHubFixture,
  purchase,
  readError,
  readResult,
  register,
  runCli,
  signRequest,
  type HubFixture,
  type TestTerminal,
  type TestWallet,
} from './kit.ts';

const cli = (dataDir: string, ...args: string[]) => runCli(dataDir, args);

describe('incident reports', () => {
  let fx: HubFixture;
  let gate: TestTerminal;
  let wallet: TestWallet;
  beforeAll(async () => {
    fx = await openHubFixture();
    gate = await enroll(fx.hub, 'gate-out', 'gate', 'transit');
    wallet = await register(fx.hub);
    await fx.hub.topUp({ wallet: wallet.id, amountMinor: 1000, operatorId: 'setup' });
  });
  afterAll(async () => {
    await fx.cleanup();
  });

  const report = (amountMinor: number, time: number) =>
    signRequest(gate, { type: 'incident', kind: 'unsigned-passage', wallet: wallet.id, amountMinor, currency: 'EUR', detail: 'wallet did not sign in time' }, fx.now, { offline: true, time });

  it('records a report once, moves no money, and answers a resend with the same signed result', async () => {
    const { requestId, bytes } = report(300, fx.now - 60_000);
    const first = await fx.hub.handleRequest(gate.id, bytes);
    expect(readResult(fx.hub, first)).toMatchObject({ requestId, terminalId: gate.id, status: 'approved', withdrawal: 'none', amountMinor: 0 });
    fx.advance(5_000);
    expect(Buffer.from(await fx.hub.handleRequest(gate.id, bytes)).equals(Buffer.from(first))).toBe(true);
    expect(fx.hub.incidents()).toEqual([
      { requestId, terminalId: gate.id, wallet: wallet.id, kind: 'unsigned-passage', amountMinor: 300, currency: 'EUR', detail: 'wallet did not sign in time', timeMs: fx.now - 65_000, recordedMs: fx.now - 5_000 },
    ]);
    expect((await fx.hub.showAccount(wallet.id))?.account.balanceMinor).toBe(1000);
  });

  it('refuses a report claiming another terminal, a malformed one, and one from a terminal that is not a gate, with signed answers', async () => {
    const other = await enroll(fx.hub, 'gate-other', 'gate', 'transit');
    const claimed = report(400, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(other.id, claimed.bytes))).toMatchObject({ status: 'declined', code: 'TERMINAL_MISMATCH' });
    const message = JSON.parse(Buffer.from(report(400, fx.now).bytes).toString('utf8')) as { body: { op: { detail: string } } };
    message.body.op.detail = 'x'.repeat(201); // over the schema's bound
    expect(readError(fx.hub, await fx.hub.handleRequest(gate.id, Buffer.from(JSON.stringify(message))))).toMatchObject({ code: 'MALFORMED', terminalId: gate.id });
    // Only a gate lets someone through unpaid: a POS or vending machine may not write incidents.
    const till = await enroll(fx.hub, 'pos-incident', 'pos', 'shop');
    const fromPos = signRequest(till, { type: 'incident', kind: 'unsigned-passage', wallet: wallet.id, amountMinor: 100, currency: 'EUR', detail: 'x' }, fx.now, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest(till.id, fromPos.bytes))).toMatchObject({ status: 'declined', code: 'NOT_PERMITTED' });
    expect(fx.hub.incidents()).toHaveLength(1);
  });

  it('the operator lists them with the CLI, all or one wallet\'s; a bad limit exits 2 naming the field', async () => {
    await fx.hub.close(); // the CLI opens the folder itself (a running hub answers over its admin socket)
    const all = await cli(fx.dir, 'incidents');
    expect(all.code).toBe(0);
    expect((JSON.parse(all.stdout) as { incidents: Array<{ wallet: string; amountMinor: number }> }).incidents).toMatchObject([{ wallet: wallet.id, amountMinor: 300 }]);
    const none = await cli(fx.dir, 'incidents', '--wallet', 'ab'.repeat(32));
    expect(JSON.parse(none.stdout)).toEqual({ incidents: [] });
    const bad = await cli(fx.dir, 'incidents', '--limit', '0');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('limit');
  });

  it('keeps them for INCIDENT_RETENTION_MS, then the hold timer drops them', async () => {
    const own = await openHubFixture();
    try {
      const ownGate = await enroll(own.hub, 'gate-out', 'gate', 'transit');
      const ownWallet = await register(own.hub);
      const op = { type: 'incident' as const, kind: 'unsigned-passage' as const, wallet: ownWallet.id, amountMinor: 120, currency: 'EUR', detail: 'card pulled' };
      const { requestId, bytes } = signRequest(ownGate, op, own.now, { offline: true });
      await own.hub.handleRequest(ownGate.id, bytes);
      own.advance(INCIDENT_RETENTION_MS - 1_000);
      await own.hub.releaseDueHolds();
      expect(own.hub.incidents().map((i) => i.requestId)).toEqual([requestId]);
      own.advance(2_000);
      await own.hub.releaseDueHolds();
      expect(own.hub.incidents()).toEqual([]);
    } finally {
      await own.cleanup();
    }
  });
});

describe('offline uploads the hub cannot take', () => {
  let fx: HubFixture;
  let pos: TestTerminal;
  let vend: TestTerminal;
  let gateIn: TestTerminal;
  let gateOut: TestTerminal;
  let w: TestWallet;
  const hubLog: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void hubLog.push(JSON.parse(line) as { level: number; msg: string }) });
  beforeAll(async () => {
    fx = await openHubFixture({ logger });
    pos = await enroll(fx.hub, 'pos-1', 'pos', 'snacks');
    vend = await enroll(fx.hub, 'vend-1', 'vending', 'snacks');
    gateIn = await enroll(fx.hub, 'gate-in', 'gate', 'transit');
    gateOut = await enroll(fx.hub, 'gate-out', 'gate', 'transit');
    fx.hub.importCatalog(SNACKS);
    fx.hub.importFares(FARES);
    fx.hub.importProducts(PRODUCTS);
    w = await fundedWallet(fx, pos, 5000, { offlineLimitMinor: 1000 });
  });
  afterAll(async () => {
    await fx.cleanup();
  });

  const incidentOf = (requestId: string) => fx.hub.incidents().find((i) => i.requestId === requestId);
  const COLA = [{ sku: 'cola', qty: 1, unitMinor: 250 }];
  /** A terminal's signed request with its signature spoiled (a corrupted upload, a key the hub does not hold). */
  const badlySigned = (bytes: Uint8Array) => {
    const message = JSON.parse(Buffer.from(bytes).toString('utf8')) as { sig: string };
    return Buffer.from(JSON.stringify({ ...message, sig: (message.sig.startsWith('0') ? '1' : '0') + message.sig.slice(1) }));
  };

  it('a ticket used twice at gates deciding without the hub: the second use is declined TICKET_USED and recorded', async () => {
    const sale = signRequest(gateIn, { type: 'ticket.sale', authorization: authorize(gateIn, w, 'ticket', 700, [], fx.now), license: w.license, product: 'day-pass' }, fx.now);
    const ticket = readResult(fx.hub, await fx.hub.handleRequest(gateIn.id, sale.bytes)).ticket as Envelope<'ticket'>;
    const use = (gate: TestTerminal) => signRequest(gate, { type: 'ticket.use', ticket, station: 'park', usedAt: fx.now }, fx.now, { offline: true });
    const first = use(gateIn);
    const second = use(gateOut);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateIn.id, first.bytes)).status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, second.bytes)).code).toBe('TICKET_USED');
    expect(incidentOf(first.requestId)).toBeUndefined();
    expect(incidentOf(second.requestId)).toMatchObject({
      terminalId: gateOut.id,
      wallet: w.id,
      kind: 'declined-offline',
      amountMinor: 0,
      currency: 'EUR',
      detail: 'ticket.use decided without the hub, declined: TICKET_USED',
    });
    // Online, the gate turned the customer away: nothing to follow up.
    const online = signRequest(gateOut, { type: 'ticket.use', ticket, station: 'park', usedAt: fx.now }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, online.bytes)).code).toBe('TICKET_USED');
    expect(incidentOf(online.requestId)).toBeUndefined();
  });

  it("an offline sale whose terminal signature fails, or that names another terminal, from an authenticated terminal: recorded (unverified), logged at error", async () => {
    hubLog.length = 0;
    const sale = purchase(vend, w, COLA, fx.now, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, badlySigned(sale.bytes))).code).toBe('BAD_SIGNATURE');
    expect(incidentOf(sale.requestId)).toMatchObject({ terminalId: vend.id, wallet: w.id, kind: 'unverified-offline', amountMinor: 250, currency: 'EUR', detail: expect.stringContaining('BAD_SIGNATURE') });
    expect(hubLog).toContainEqual(expect.objectContaining({ level: 50, requestId: sale.requestId, terminalId: vend.id, kind: 'unverified-offline' }));
    // The POS's sale relayed by the vending machine's session: recorded under the session's terminal, never the claimed one.
    const relayed = purchase(pos, w, COLA, fx.now, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, relayed.bytes)).code).toBe('TERMINAL_MISMATCH');
    expect(incidentOf(relayed.requestId)).toMatchObject({ terminalId: vend.id, kind: 'unverified-offline', detail: expect.stringContaining('TERMINAL_MISMATCH') });
    // Sent again: one incident.
    await fx.hub.handleRequest(vend.id, badlySigned(sale.bytes));
    expect(fx.hub.incidents().filter((i) => i.requestId === sale.requestId)).toHaveLength(1);
  });

  it('nothing from a sender that is not an enrolled, unrevoked terminal, nor for an online request', async () => {
    const before = fx.hub.incidents().length;
    const online = purchase(vend, w, COLA, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, badlySigned(online.bytes))).code).toBe('BAD_SIGNATURE');
    const stranger = purchase({ ...vend, id: 'stranger' }, w, COLA, fx.now, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest('stranger', stranger.bytes)).code).toBe('UNKNOWN_TERMINAL');
    const stolen = await enroll(fx.hub, 'vend-stolen', 'vending', 'snacks');
    fx.hub.revokeTerminal(stolen.id);
    const fromStolen = purchase(stolen, w, COLA, fx.now, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest(stolen.id, fromStolen.bytes)).code).toBe('REVOKED');
    expect(messageType(await fx.hub.handleRequest('stranger', unreadable(purchase(vend, w, COLA, fx.now, { offline: true }).bytes)))).toBe('error');
    expect(fx.hub.incidents()).toHaveLength(before);
  });

  /** A request the hub cannot read: a field the schema refuses. */
  function unreadable(bytes: Uint8Array, change: (m: { v: number; type: string; body: { op: { lines?: unknown } } }) => void = (m) => void (m.body.op.lines = 'x')) {
    const message = JSON.parse(Buffer.from(bytes).toString('utf8')) as { v: number; type: string; body: { op: { lines?: unknown } } };
    change(message);
    return Buffer.from(JSON.stringify(message));
  }

  it('an offline upload the hub cannot read (MALFORMED, WRONG_TYPE, UNSUPPORTED_VERSION) from an authenticated terminal: a signed error and an incident', async () => {
    hubLog.length = 0;
    const cases = [
      ['MALFORMED', undefined],
      ['UNSUPPORTED_VERSION', (m: { v: number }) => void (m.v = 99)],
      ['WRONG_TYPE', (m: { type: string }) => void (m.type = 'settlement.requests')],
    ] as const;
    for (const [code, change] of cases) {
      const sale = purchase(vend, w, COLA, fx.now, { offline: true });
      const answer = await fx.hub.handleRequest(vend.id, unreadable(sale.bytes, change));
      expect(readError(fx.hub, answer)).toMatchObject({ code, requestId: sale.requestId, terminalId: vend.id });
      expect(incidentOf(sale.requestId)).toMatchObject({ terminalId: vend.id, wallet: w.id, kind: 'unverified-offline', amountMinor: 250, currency: 'EUR', detail: expect.stringContaining(code) });
      expect(hubLog).toContainEqual(expect.objectContaining({ level: 50, requestId: sale.requestId, kind: 'unverified-offline' }));
    }
    // Marked online: the terminal did not hand anything over.
    const online = purchase(vend, w, COLA, fx.now);
    expect(readError(fx.hub, await fx.hub.handleRequest(vend.id, unreadable(online.bytes))).code).toBe('MALFORMED');
    expect(incidentOf(online.requestId)).toBeUndefined();
  });

  it(`a terminal records at most ${MAX_UNVERIFIED_INCIDENTS_PER_HOUR} unverified incidents an hour (said at error), then again the next hour`, async () => {
    const flood = await enroll(fx.hub, 'vend-flood', 'vending', 'snacks');
    const send = async () => {
      const sale = purchase(flood, w, COLA, fx.now, { offline: true });
      await fx.hub.handleRequest(flood.id, unreadable(sale.bytes));
      return sale.requestId;
    };
    for (let i = 0; i < MAX_UNVERIFIED_INCIDENTS_PER_HOUR; i++) await send();
    hubLog.length = 0;
    const dropped = await send();
    expect(incidentOf(dropped)).toBeUndefined();
    expect(fx.hub.incidents({ limit: 1000 }).filter((i) => i.terminalId === flood.id)).toHaveLength(MAX_UNVERIFIED_INCIDENTS_PER_HOUR);
    expect(hubLog).toContainEqual(expect.objectContaining({ level: 50, terminalId: flood.id, msg: expect.stringMatching(/not recorded/) }));
    // Another terminal is not held up by it; the flooding one records again an hour later.
    const sale = purchase(vend, w, COLA, fx.now, { offline: true });
    await fx.hub.handleRequest(vend.id, unreadable(sale.bytes));
    expect(incidentOf(sale.requestId)).toBeDefined();
    fx.advance(3600_000);
    expect(incidentOf(await send())).toBeDefined();
  });

  it('an unreadable upload of an incident report is not one (only a gate may report, with its signature)', async () => {
    const report = signRequest(vend, { type: 'incident', kind: 'unsigned-passage', wallet: w.id, amountMinor: 100, currency: 'EUR', detail: 'x' }, fx.now, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, badlySigned(report.bytes))).code).toBe('BAD_SIGNATURE');
    const message = JSON.parse(Buffer.from(report.bytes).toString('utf8')) as { body: { op: { detail: string } } };
    message.body.op.detail = 'x'.repeat(201);
    expect(readError(fx.hub, await fx.hub.handleRequest(vend.id, Buffer.from(JSON.stringify(message)))).code).toBe('MALFORMED');
    expect(incidentOf(report.requestId)).toBeUndefined();
  });
});
