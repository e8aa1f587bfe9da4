// What a terminal could not settle (an exit gate opened, the wallet never signed) is reported as a
// terminal-signed `incident` op: the hub records it once for the operator, moves no money, answers
// with a signed result, and the operator CLI lists it. A real hub on a temp data dir; the CLI as
// a child process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INCIDENT_RETENTION_MS } from '../../hub/service/hub.ts';
import { openHubFixture, enroll, readError, readResult, register, runCli, signRequest, type HubFixture, type TestTerminal, type TestWallet } from './kit.ts';

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
