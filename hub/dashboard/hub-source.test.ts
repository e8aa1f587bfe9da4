/**
 * The dashboard's view of a REAL hub (createHub: registry + SQLite ledger in a temp dir), fed
 * through the instrumented request path: settlements with their terminal, a purchase inside its
 * cancellation window, the blocklist, account history, the verify-ledger result.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMessage, newRequestId, signMessage, toHex } from '../../protocol/index.ts';
import { makePurchaseRequest, nodeSigningKey } from '../../simulators/load/purchase-request.ts';
import { createHub, type Hub } from '../service/hub.ts';
import { VERIFY_DUTY_FACTOR, createHubSource, nextVerifyDelayMs, type HubSource } from './hub-source.ts';
import { instrumentHandler } from './instrument.ts';
import { LiveMeter } from './live-meter.ts';

describe('createHubSource on a real hub', () => {
  let dir: string;
  let hub: Hub;
  let source: HubSource;
  const meter = new LiveMeter();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-dash-hub-'));
    hub = await createHub({ dataDir: dir, holdReleaseIntervalMs: 0 });
    source = createHubSource({ hub, meter, name: 'test hub', verifyIntervalMs: 60_000 });
  });
  afterAll(async () => {
    source?.close();
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows settlements, holds, the blocklist, history and a verified ledger', async () => {
    hub.importCatalog({ merchantId: 'shop', articles: [{ sku: 'mug', name: 'Mug', priceMinor: 1290, currency: 'EUR', cancelWindowMs: 60_000 }] });
    const terminal = await hub.enrollTerminal({ terminalId: 'pos-1', kind: 'pos', merchantId: 'shop' });
    const rich = await hub.registerWallet({});
    const poor = await hub.registerWallet({});
    await hub.topUp({ wallet: rich.license.body.wallet, amountMinor: 5_000, operatorId: 'test' });
    const handler = instrumentHandler(hub, meter);
    const buy = (w: typeof rich, counter: number) => {
      const req = makePurchaseRequest(
        {
          terminalId: 'pos-1',
          merchantId: 'shop',
          terminalKey: nodeSigningKey(terminal.keyPair!.secretKey),
          walletPublicKeyHex: w.license.body.wallet,
          walletKey: nodeSigningKey(w.keyPair!.secretKey),
          license: w.license,
        },
        { lines: [{ sku: 'mug', qty: 1, unitMinor: 1290 }], currency: 'EUR', counter, nowMs: Date.now() },
      );
      return handler.handleRequest('pos-1', req.bytes).then(() => req.requestId);
    };
    let changes = 0;
    source.subscribe!(() => changes++);
    const approvedId = await buy(rich, 1);
    await buy(poor, 1);
    hub.blocklistAdd(poor.license.body.wallet, 'test');

    const snap = await source.snapshot();
    expect(snap.hub.name).toBe('test hub');
    expect(snap.terminals).toEqual([expect.objectContaining({ terminalId: 'pos-1', kind: 'pos', merchantId: 'shop', state: 'unknown' })]);
    expect(snap.settlements.map((s) => [s.requestId, s.status, s.code ?? null, s.terminalId])).toEqual([
      [expect.any(String), 'declined', 'INSUFFICIENT_FUNDS', 'pos-1'],
      [approvedId, 'approved', null, 'pos-1'],
    ]);
    expect(changes).toBe(2);
    expect(snap.holds).toEqual([expect.objectContaining({ walletId: rich.license.body.wallet, merchantId: 'shop', amountMinor: 1290 })]);
    // The mug waits in the hold: nothing has reached the merchant yet.
    expect(snap.merchants).toEqual([{ id: 'shop', balanceMinor: 0, currency: 'EUR', terminals: 1 }]);
    expect(snap.blocklist).toMatchObject({ count: 1, wallets: [poor.license.body.wallet] });
    expect(snap.throughput).toMatchObject({ totalSettled: 1, totalDeclined: 1, declinedByCode: { INSUFFICIENT_FUNDS: 1 } });
    expect(snap.throughput.latencyMsP99).toBeGreaterThan(0);

    const verify = await source.verifyNow();
    expect(verify.ok).toBe(true);
    expect(verify.detail).toMatch(/^conservation holds across \d+ accounts; EUR: issued 5000 /);
    expect((await source.snapshot()).verify).toEqual(verify);

    const account = await source.account(rich.license.body.wallet);
    expect(account).toMatchObject({ kind: 'wallet', balanceMinor: 5_000 - 1290, flagged: false, blocklisted: false });
    expect(account!.history.map((h) => [h.entryKind, h.amountMinor])).toEqual(expect.arrayContaining([['topup', 5_000]]));
    expect((await source.account(poor.license.body.wallet))?.blocklisted).toBe(true);
    expect(await source.account(toHex(new Uint8Array(32)))).toBeNull();
  });

  it("lists the incidents terminals reported, newest first, and the fare each left open", async () => {
    const gate = await hub.enrollTerminal({ terminalId: 'gate-out', kind: 'gate', merchantId: 'transit' });
    const wallet = (await hub.registerWallet({})).license.body.wallet;
    const report = (amountMinor: number, time: number) => {
      const op = { type: 'incident' as const, kind: 'unsigned-passage' as const, wallet, amountMinor, currency: 'EUR', detail: 'wallet did not sign in time' };
      const body = { requestId: newRequestId(), terminalId: 'gate-out', time, offline: true, op };
      return { requestId: body.requestId, bytes: encodeMessage(signMessage('settlement.request', body, gate.keyPair!.secretKey)) };
    };
    const older = report(300, Date.now() - 60_000);
    const newer = report(450, Date.now());
    const handler = instrumentHandler(hub, meter);
    for (const r of [older, newer]) await handler.handleRequest('gate-out', r.bytes);
    const snap = await source.snapshot();
    expect(snap.incidents.count).toBe(2);
    expect(snap.incidents.latest).toEqual([
      { requestId: newer.requestId, terminalId: 'gate-out', wallet, kind: 'unsigned-passage', amountMinor: 450, currency: 'EUR', detail: 'wallet did not sign in time', timeMs: expect.any(Number) },
      expect.objectContaining({ requestId: older.requestId, amountMinor: 300 }),
    ]);
  });

  it('verifies again in the background, and less often when a verify takes long (a large ledger on the hub thread)', async () => {
    expect(nextVerifyDelayMs(5_000, 10)).toBe(5_000);
    expect(nextVerifyDelayMs(5_000, 3_000)).toBe(3_000 * VERIFY_DUTY_FACTOR);
    const fast = createHubSource({ hub, meter, verifyIntervalMs: 20 });
    try {
      const first = await fast.verifyNow();
      await new Promise((r) => setTimeout(r, 400));
      const later = (await fast.snapshot()).verify;
      expect(later?.ok).toBe(true);
      expect(later!.checkedAtMs).toBeGreaterThan(first.checkedAtMs);
    } finally {
      fast.close();
    }
  });
});
