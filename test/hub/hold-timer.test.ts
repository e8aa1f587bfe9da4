// The hub's own timer releases holds once their window has ended (seed 004 claim 13), also while
// the registry cannot write (its pruning fails): each periodic task fails on its own, logged.
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SNACKS, cashTopup, enroll, openHubFixture, purchase, readResult, register, type HubFixture } from './kit.ts';

let fx: HubFixture;
const hubLog: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => void hubLog.push(JSON.parse(line) as { level: number; msg: string }) });

beforeAll(async () => {
  fx = await openHubFixture({ holdReleaseIntervalMs: 10, logger });
});

afterAll(async () => {
  await fx.cleanup();
});

async function heldUntilReleased(): Promise<void> {
  const deadline = Date.now() + 5000;
  while ((await fx.hub.engine.pendingHolds(10)).length > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
  await fx.hub.engine.flush();
}

it('releases a due hold to the merchant without anyone asking', async () => {
  const pos = await enroll(fx.hub, 'pos-t', 'pos', 'snacks');
  fx.hub.importCatalog(SNACKS);
  const w = await register(fx.hub);
  readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 6000, fx.now).bytes));
  const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now).bytes));
  expect(r.holdUntil).toBeGreaterThan(fx.now);
  expect(await fx.hub.engine.pendingHolds(10)).toHaveLength(1);
  fx.advance(16 * 60_000);
  await heldUntilReleased();
  expect(await fx.hub.engine.pendingHolds(10)).toHaveLength(0);
  expect((await fx.hub.showAccount('snacks'))?.account.balanceMinor).toBe(5000);
});

it('releases due holds while the registry cannot commit (each failed prune logged at error)', async () => {
  const pos = await enroll(fx.hub, 'pos-t2', 'pos', 'snacks');
  const w = await register(fx.hub);
  readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 6000, fx.now).bytes));
  const jacket = readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now).bytes));
  expect(jacket.holdUntil).toBeGreaterThan(fx.now);
  const before = (await fx.hub.showAccount('snacks'))?.account.balanceMinor ?? NaN;
  fx.hub.registry.db.exec("CREATE TRIGGER full BEFORE INSERT ON challenges BEGIN SELECT RAISE(ABORT, 'disk full'); END");
  try {
    // Its claim waits in memory for a commit that fails: every prune's commit then throws.
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes)).status).toBe('approved');
    await expect(fx.hub.registry.flush()).rejects.toThrow('disk full');
    hubLog.length = 0;
    fx.advance(16 * 60_000);
    await heldUntilReleased();
    expect(await fx.hub.engine.pendingHolds(10)).toHaveLength(0);
    expect((await fx.hub.showAccount('snacks'))?.account.balanceMinor).toBe(before + 5000 + 250);
    // Said, at error, naming the task; and the caller asking for the release gets it.
    expect(hubLog).toContainEqual(expect.objectContaining({ level: 50, task: 'prune challenges', err: expect.objectContaining({ message: 'disk full' }) }));
    await expect(fx.hub.releaseDueHolds()).resolves.toEqual({ releasedCount: 0 });
  } finally {
    fx.hub.registry.db.exec('DROP TRIGGER full');
  }
});
