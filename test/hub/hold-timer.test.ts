// The hub's own timer releases holds once their window has ended (seed 004 claim 13).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SNACKS, cashTopup, enroll, openHubFixture, purchase, readResult, register, type HubFixture } from './kit.ts';

let fx: HubFixture;

beforeAll(async () => {
  fx = await openHubFixture({ holdReleaseIntervalMs: 10 });
});

afterAll(async () => {
  await fx.cleanup();
});

it('releases a due hold to the merchant without anyone asking', async () => {
  const pos = await enroll(fx.hub, 'pos-t', 'pos', 'snacks');
  fx.hub.importCatalog(SNACKS);
  const w = await register(fx.hub);
  readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 6000, fx.now).bytes));
  const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now).bytes));
  expect(r.holdUntil).toBeGreaterThan(fx.now);
  expect(await fx.hub.engine.pendingHolds(10)).toHaveLength(1);
  fx.advance(16 * 60_000);
  const deadline = Date.now() + 5000;
  while ((await fx.hub.engine.pendingHolds(10)).length > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
  await fx.hub.engine.flush();
  expect(await fx.hub.engine.pendingHolds(10)).toHaveLength(0);
  expect((await fx.hub.showAccount('snacks'))?.account.balanceMinor).toBe(5000);
});
