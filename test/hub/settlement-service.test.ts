// End to end through the hub's settlement service: real SQLite files in a temp dir, real keys,
// real signed messages made with protocol functions. No MQTT: the service is transport-free.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeAndVerify,
  encodeMessage,
  generateKeyPair,
  issueWalletLicense,
  newChallenge,
  newRequestId,
  PAID_EXIT_UNUSED,
  sealCard,
  toHex,
  topics,
  type Envelope,
} from '../../protocol/index.ts';
import { TEST_PAN_APPROVED, TEST_PAN_DECLINED } from '../../simulators/card-authorizer/card-authorizer-simulator.ts';
import { SimulatedClearing } from '../../hub/clearing/clearing-adapter.ts';
import { CardAuthorizerSimulator } from '../../simulators/card-authorizer/card-authorizer-simulator.ts';
import { DataDirBusyError } from '../../hub/service/data-dir-lock.ts';
import { createHub } from '../../hub/service/hub.ts';
import {
  FARES,
  PRODUCTS,
  SNACKS,
  T0,
  admissionRecord,
  authorize,
  cancellation,
  cashTopup,
  enroll,
  fundedWallet,
  historyQuery,
  messageType,
  openHubFixture,
  purchase,
  readError,
  readResult,
  receipt,
  register,
  registryLosesWhatFollows,
  signRequest,
  transfer,
  type HubFixture,
  type TestTerminal,
  type TestWallet,
} from './kit.ts';

let fx: HubFixture;
let pos: TestTerminal;
let vend: TestTerminal;
let gateIn: TestTerminal;
let gateOut: TestTerminal;

const funded = (amountMinor: number, options: Parameters<typeof register>[1] = {}) => fundedWallet(fx, pos, amountMinor, options);

async function balanceOf(w: TestWallet): Promise<number> {
  return (await fx.hub.showAccount(w.id))?.account.balanceMinor ?? NaN;
}

/** What the hub logged at warn and above, parsed. */
const hubLog: Array<{ msg: string; [k: string]: unknown }> = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => void hubLog.push(JSON.parse(line) as { msg: string }) });

beforeAll(async () => {
  fx = await openHubFixture({ logger, cardAuthorizer: new CardAuthorizerSimulator(), clearing: new SimulatedClearing() });
  pos = await enroll(fx.hub, 'pos-1', 'pos', 'snacks');
  vend = await enroll(fx.hub, 'vend-1', 'vending', 'snacks');
  gateIn = await enroll(fx.hub, 'gate-in', 'gate', 'transit');
  gateOut = await enroll(fx.hub, 'gate-out', 'gate', 'transit');
  fx.hub.importCatalog(SNACKS);
  fx.hub.importFares(FARES);
  fx.hub.importProducts(PRODUCTS);
});

afterAll(async () => {
  const check = await fx.hub.verifyLedger();
  expect(check.discrepancies).toEqual([]);
  await fx.cleanup();
});

describe('purchase', () => {
  it('approves a catalog purchase, withdraws durably and returns a fresh signed balance statement', async () => {
    const w = await funded(1000);
    const { requestId, bytes } = purchase(vend, w, [{ sku: 'cola', qty: 2, unitMinor: 250 }], fx.now);
    const r = readResult(fx.hub, await fx.hub.handleRequest(vend.id, bytes));
    expect(r).toMatchObject({ requestId, status: 'approved', withdrawal: 'complete', amountMinor: 500, currency: 'EUR' });
    expect(r.code).toBeUndefined();
    const st = r.statement as Envelope<'balance.statement'>;
    expect(decodeAndVerify(encodeMessage(st), 'balance.statement', fx.hub.hubPublicKey).ok).toBe(true);
    expect(st.body).toMatchObject({ wallet: w.id, balanceMinor: 500, entries: [] });
    expect(await balanceOf(w)).toBe(500);
  });

  it('declines insufficient funds with a signed result and moves nothing', async () => {
    const w = await funded(100);
    const r = readResult(fx.hub, await fx.hub.handleRequest(vend.id, purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes));
    expect(r).toMatchObject({ status: 'declined', code: 'INSUFFICIENT_FUNDS', withdrawal: 'none' });
    expect(await balanceOf(w)).toBe(100);
  });

  it('settles an offline vending sale the wallet could not cover: flagged and blocklisted', async () => {
    const w = await funded(100, { offlineLimitMinor: 500 });
    fx.advance(3600_000);
    // Sold while the machine was offline half an hour ago, uploaded now (beyond the online skew).
    const sale = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now - 1800_000, { offline: true });
    const r = readResult(fx.hub, await fx.hub.handleRequest(vend.id, sale.bytes));
    expect(r).toMatchObject({ status: 'approved', amountMinor: 250 });
    expect(r.statement?.body.balanceMinor).toBe(-150);
    expect(fx.hub.blocklist().map((b) => b.wallet)).toContain(w.id);
    fx.hub.blocklistRemove(w.id);
  });

  /** An offline vending sale of 250 on a wallet holding 100: approved, the wallet at -150. */
  async function overspend(w: TestWallet): Promise<void> {
    fx.advance(3600_000);
    const sale = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now - 1800_000, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, sale.bytes)).statement?.body.balanceMinor).toBe(-150);
  }

  it('an overspent wallet an operator lifted from the blocklist stays lifted across a restart', async () => {
    const w = await funded(100, { offlineLimitMinor: 500 });
    await overspend(w);
    expect(fx.hub.blocklistRemove(w.id)).toBe(true); // the customer paid back
    await fx.reopen();
    expect(fx.hub.registry.isBlocklisted(w.id)).toBe(false);
    // The same after an upgrade from a registry that kept no record of the rows it handled.
    await fx.reopen(() => {
      const db = new Database(join(fx.dir, 'registry.sqlite'));
      db.exec("DELETE FROM overspend_blocks; UPDATE meta SET value = -1 WHERE key = 'overspend_ledger_seq'");
      db.close();
    });
    expect(fx.hub.registry.isBlocklisted(w.id)).toBe(false);
    expect(fx.hub.registry.overspendLedgerSeq()).toBeGreaterThan(0);
  });

  it('blocklists an overspent wallet at start when a power cut took the blocklisting but not the overdraft', async () => {
    const w = await funded(100, { offlineLimitMinor: 500 });
    const restoreSnapshot = await registryLosesWhatFollows(fx, 'overspend');
    await overspend(w);
    expect(fx.hub.registry.isBlocklisted(w.id)).toBe(true);
    hubLog.length = 0;
    await restoreSnapshot(); // the registry as before the sale; the ledger kept the overdraft
    expect(fx.hub.blocklist().find((b) => b.wallet === w.id)?.reason).toBe('overspent offline');
    expect(hubLog).toContainEqual(expect.objectContaining({ msg: expect.stringMatching(/overspent wallets .* blocklisted again from the ledger/), wallets: [w.id] }));
    fx.hub.blocklistRemove(w.id);
  });

  it('declines a wrong price (AMOUNT_MISMATCH) and an unknown sku (UNKNOWN_ARTICLE)', async () => {
    const w = await funded(1000);
    const wrong = readResult(fx.hub, await fx.hub.handleRequest(vend.id, purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 1 }], fx.now).bytes));
    expect(wrong.code).toBe('AMOUNT_MISMATCH');
    const unknown = readResult(fx.hub, await fx.hub.handleRequest(vend.id, purchase(vend, w, [{ sku: 'caviar', qty: 1, unitMinor: 1 }], fx.now).bytes));
    expect(unknown.code).toBe('UNKNOWN_ARTICLE');
  });

  it('restricts by age, by group, and blocks blocklisted wallets', async () => {
    const minor = await funded(2000, { ageOver: 16 });
    const adult = await funded(2000, { ageOver: 18 });
    const staff = await funded(2000, { groups: ['staff'] });
    const beer = [{ sku: 'beer', qty: 1, unitMinor: 400 }];
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, minor, beer, fx.now).bytes)).code).toBe('RESTRICTED');
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, adult, beer, fx.now).bytes)).status).toBe('approved');
    // A license the hub has seen verify, re-used with a raised age: its signature no longer holds.
    await fx.hub.handleRequest(pos.id, purchase(pos, minor, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes);
    const older = { ...minor, license: { ...minor.license, body: { ...minor.license.body, ageOver: 18 } } };
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, older, beer, fx.now).bytes)).code).toBe('BAD_SIGNATURE');
    const meal = [{ sku: 'staff-meal', qty: 1, unitMinor: 300 }];
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, adult, meal, fx.now).bytes)).code).toBe('RESTRICTED');
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, staff, meal, fx.now).bytes)).status).toBe('approved');
    expect(fx.hub.blocklistAdd(staff.id, 'stolen')).toBe(true);
    const blocked = readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, staff, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes));
    expect(blocked.code).toBe('BLOCKLISTED');
    expect(fx.hub.blocklistRemove(staff.id)).toBe(true);
  });
});

describe('concurrency', () => {
  it('concurrent taps of one wallet: exactly as many approvals as the balance covers, never below zero', async () => {
    const w = await funded(1000);
    const reqs = Array.from({ length: 12 }, () => purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now));
    const answers = await Promise.all(reqs.map((r) => fx.hub.handleRequest(vend.id, r.bytes)));
    const results = answers.map((a) => readResult(fx.hub, a));
    expect(results.filter((r) => r.status === 'approved')).toHaveLength(4);
    expect(results.filter((r) => r.code === 'INSUFFICIENT_FUNDS')).toHaveLength(8);
    expect(await balanceOf(w)).toBe(0);
  });
});

describe('mall and revocation', () => {
  it("splits a sub-merchant's revenue with its mall (seed 003 claim 7)", async () => {
    const { certificate, keyPair } = await fx.hub.enrollTerminal({ terminalId: 'shop-a-pos', kind: 'pos', merchantId: 'shop-a', parentMerchantId: 'mall', shareBps: 1000 });
    const shopPos: TestTerminal = { id: 'shop-a-pos', merchantId: 'shop-a', keyPair: keyPair as TestTerminal['keyPair'], certificate };
    fx.hub.importCatalog({ merchantId: 'shop-a', articles: [{ sku: 'lamp', name: 'Lamp', priceMinor: 2000, currency: 'EUR' }] });
    const w = await funded(3000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(shopPos.id, purchase(shopPos, w, [{ sku: 'lamp', qty: 1, unitMinor: 2000 }], fx.now).bytes)).status).toBe('approved');
    await fx.hub.engine.flush();
    expect((await fx.hub.showAccount('mall'))?.account.balanceMinor).toBe(200);
    expect((await fx.hub.showAccount('shop-a'))?.account.balanceMinor).toBe(1800);
  });

  it('a revoked license is refused and its wallet announced on the blocklist', async () => {
    const w = await funded(1000);
    expect(fx.hub.revokeWallet(w.id)).toBe(true);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes)).code).toBe('REVOKED');
    expect(fx.hub.blocklist().map((b) => b.wallet)).toContain(w.id);
    // It stays listed (offline terminals learn of revocations only there), receives no money, and
    // revoking again lists it whatever happened to the entry.
    expect(() => fx.hub.blocklistRemove(w.id)).toThrow(expect.objectContaining({ code: 'REVOKED' }) as unknown as Error);
    expect(fx.hub.blocklist().map((b) => b.wallet)).toContain(w.id);
    await expect(fx.hub.topUp({ wallet: w.id, amountMinor: 500, operatorId: 'op-1' })).rejects.toMatchObject({ code: 'REVOKED' });
    const a = await funded(1000);
    const gift = signRequest(pos, { type: 'transfer', transfer: transfer(a, w, 400, fx.now) }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, gift.bytes))).toMatchObject({ status: 'declined', code: 'REVOKED' });
    expect([await balanceOf(a), await balanceOf(w)]).toEqual([1000, 1000]);
    fx.hub.registry.blocklistRemove(w.id, fx.now); // lifted behind the hub's back (before the refusal existed)
    expect(fx.hub.revokeWallet(w.id)).toBe(false);
    expect(fx.hub.blocklist().map((b) => b.wallet)).toContain(w.id);
  });
});

describe('authentication and replay', () => {
  it('rejects a bad terminal signature with a signed result', async () => {
    const w = await funded(1000);
    const { bytes } = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
    const tampered = JSON.parse(Buffer.from(bytes).toString()) as { sig: string };
    tampered.sig = (tampered.sig[0] === '0' ? '1' : '0') + tampered.sig.slice(1);
    const r = readResult(fx.hub, await fx.hub.handleRequest(vend.id, new TextEncoder().encode(JSON.stringify(tampered))));
    expect(r).toMatchObject({ status: 'declined', code: 'BAD_SIGNATURE' });
  });

  it('rejects a bad wallet signature', async () => {
    const w = await funded(1000);
    const lines = [{ sku: 'cola', qty: 1, unitMinor: 250 }];
    const auth = authorize(vend, w, 'purchase', 250, lines, fx.now);
    const forged = { ...auth, sig: toHex(new Uint8Array(64).fill(7)) };
    const { bytes } = signRequest(vend, { type: 'purchase', authorization: forged, license: w.license, lines }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, bytes)).code).toBe('BAD_SIGNATURE');
    expect(await balanceOf(w)).toBe(1000);
  });

  it('rejects an unknown terminal, a revoked terminal and a terminal id mismatch', async () => {
    const w = await funded(1000);
    const lines = [{ sku: 'cola', qty: 1, unitMinor: 250 }];
    const ghost: TestTerminal = { ...vend, id: 'ghost-1', keyPair: generateKeyPair() };
    expect(readResult(fx.hub, await fx.hub.handleRequest('ghost-1', purchase(ghost, w, lines, fx.now).bytes)).code).toBe('UNKNOWN_TERMINAL');
    // A request claiming another terminal's id is declined to its sender, never in the other's name
    // (that terminal would accept a signed decline of its own request id).
    const claimed = readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(vend, w, lines, fx.now).bytes));
    expect(claimed).toMatchObject({ code: 'TERMINAL_MISMATCH', terminalId: pos.id });
    const doomed = await enroll(fx.hub, 'vend-doomed', 'vending', 'snacks');
    expect(fx.hub.lookupTerminal('vend-doomed')).toMatchObject({ kind: 'vending', merchantId: 'snacks', revoked: false });
    expect(fx.hub.revokeTerminal('vend-doomed')).toBe(true);
    expect(fx.hub.lookupTerminal('vend-doomed')?.revoked).toBe(true);
    expect(readResult(fx.hub, await fx.hub.handleRequest(doomed.id, purchase(doomed, w, lines, fx.now).bytes)).code).toBe('REVOKED');
    expect(await balanceOf(w)).toBe(1000);
  });

  it('rejects an expired license and a license from an unknown issuer', async () => {
    const w = await funded(1000, { validityMs: 60_000 });
    const lines = [{ sku: 'cola', qty: 1, unitMinor: 250 }];
    fx.advance(5 * 60_000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, purchase(vend, w, lines, fx.now).bytes)).code).toBe('CERT_EXPIRED');
    const rogue = generateKeyPair();
    const fake = { ...w, license: issueWalletLicense(rogue, { ...w.license.body, notAfter: fx.now + 1e9 }) };
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, purchase(vend, fake, lines, fx.now).bytes)).code).toBe('UNKNOWN_ISSUER');
  });

  it('rejects a replayed challenge under a new request id, and a stale request', async () => {
    const w = await funded(1000);
    const lines = [{ sku: 'cola', qty: 1, unitMinor: 250 }];
    const first = purchase(vend, w, lines, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, first.bytes)).status).toBe('approved');
    // A relay re-wraps the same wallet authorization into a fresh, validly signed request.
    const again = signRequest(vend, { type: 'purchase', authorization: first.authorization, license: w.license, lines }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, again.bytes)).code).toBe('REPLAY');
    const stale = purchase(vend, w, lines, fx.now - 3600_000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, stale.bytes)).code).toBe('STALE_TIMESTAMP');
    expect(await balanceOf(w)).toBe(750);
  });

  it('restores from the ledger the claims a power loss took from the registry: the kept authorizations pay once', async () => {
    const w = await funded(1000);
    const to = await funded(0);
    const lines = [{ sku: 'cola', qty: 1, unitMinor: 250 }];
    // The last claim the registry keeps moves no money: the ledger seq it records is the next row's.
    const statement = signRequest(pos, { type: 'history', query: historyQuery(w, fx.now) }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, statement.bytes)).status).toBe('approved');
    // The registry as a power loss will leave it: its last commits, from here on, lost.
    const powerCut = await registryLosesWhatFollows(fx, 'before-purchase');
    const first = purchase(vend, w, lines, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, first.bytes)).status).toBe('approved');
    const t = transfer(w, to, 300, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'transfer', transfer: t }, fx.now).bytes)).status).toBe('approved');
    const logged = await fx.hub.engine.store.logByRequestIds([first.requestId]);
    expect(logged.get(first.requestId)?.memo).toBe(
      `claim ${w.id} ${first.authorization.body.challenge} ${first.requestId} ${first.authorization.body.counter}`,
    );
    await powerCut();
    expect(hubLog.at(-1)).toMatchObject({ msg: 'wallet claims the registry had lost restored from the ledger', restored: 2 });
    // A terminal that kept the authorizations relays them again under new request ids.
    const again = signRequest(vend, { type: 'purchase', authorization: first.authorization, license: w.license, lines }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, again.bytes)).code).toBe('REPLAY');
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'transfer', transfer: t }, fx.now).bytes)).code).toBe('REPLAY');
    expect(await balanceOf(w)).toBe(450);
    expect(await balanceOf(to)).toBe(300);
    // The original request ids are still retries, not replays: the same answer again.
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, first.bytes)).status).toBe('approved');
    expect(await balanceOf(w)).toBe(450);
  });

  it('while the registry cannot write, refuses new claims (no money moves) and still refuses replays of the claims it holds', async () => {
    const w = await funded(1000);
    const lines = [{ sku: 'cola', qty: 1, unitMinor: 250 }];
    const first = purchase(vend, w, lines, fx.now);
    const second = purchase(vend, w, lines, fx.now);
    fx.hub.registry.db.exec("CREATE TRIGGER full BEFORE INSERT ON challenges BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    try {
      // Its claim is in the ledger with the money; the registry's deferred commit then fails.
      expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, first.bytes)).status).toBe('approved');
      await expect(fx.hub.registry.flush()).rejects.toThrow('disk full');
      expect(hubLog.at(-1)).toMatchObject({ level: 50, err: { message: 'disk full' } });
      const failed = readResult(fx.hub, await fx.hub.handleRequest(vend.id, second.bytes));
      expect(failed).toMatchObject({ requestId: second.requestId, status: 'declined', code: 'INTERNAL', withdrawal: 'none' });
      expect(await balanceOf(w)).toBe(750);
    } finally {
      fx.hub.registry.db.exec('DROP TRIGGER full');
    }
    const again = signRequest(vend, { type: 'purchase', authorization: first.authorization, license: w.license, lines }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, again.bytes)).code).toBe('REPLAY');
    // The terminal retries the refused one with the same request id.
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, second.bytes)).status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, second.bytes)).status).toBe('approved');
    expect(await balanceOf(w)).toBe(500);
  });

  it('answers a duplicate request id with byte-identical bytes, and different content with DUPLICATE_MISMATCH', async () => {
    const w = await funded(1000);
    const req = purchase(vend, w, [{ sku: 'chips', qty: 1, unitMinor: 180 }], fx.now);
    const a = await fx.hub.handleRequest(vend.id, req.bytes);
    fx.advance(1000);
    const [b, c] = await Promise.all([fx.hub.handleRequest(vend.id, req.bytes), fx.hub.handleRequest(vend.id, req.bytes)]);
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(c).equals(Buffer.from(a))).toBe(true);
    const other = purchase(vend, w, [{ sku: 'chips', qty: 2, unitMinor: 180 }], fx.now, { requestId: req.requestId });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, other.bytes)).code).toBe('DUPLICATE_MISMATCH');
    expect(await balanceOf(w)).toBe(820);
  });

  it("an offline sale whose id another terminal used first (it leaked on the slip) is declined DUPLICATE_MISMATCH and becomes the operator's incident", async () => {
    const w = await funded(1000);
    const thief = await funded(1000);
    const sale = purchase(pos, w, [{ sku: 'chips', qty: 1, unitMinor: 180 }], fx.now, { offline: true });
    const squat = purchase(vend, thief, [{ sku: 'chips', qty: 1, unitMinor: 180 }], fx.now, { requestId: sale.requestId });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, squat.bytes)).status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes)).code).toBe('DUPLICATE_MISMATCH');
    expect(fx.hub.incidents().find((i) => i.requestId === sale.requestId)).toMatchObject({ terminalId: pos.id, wallet: w.id, kind: 'declined-offline', amountMinor: 180 });
  });

  it('answers a retry of a payment another hub version logged (another command hash) with what the ledger decided', async () => {
    const w = await funded(1000);
    const lines = [{ sku: 'cola', qty: 1, unitMinor: 250 }];
    const paid = purchase(vend, w, lines, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, paid.bytes)).status).toBe('approved');
    await fx.hub.registry.flush();
    // As a version without claim memos logged it, and its stored result lost in a crash before the upgrade.
    await fx.reopen(() => {
      const ledger = new Database(join(fx.dir, 'ledger.sqlite'));
      const registry = new Database(join(fx.dir, 'registry.sqlite'));
      try {
        expect(ledger.prepare('UPDATE settlement_log SET memo = NULL, hash = randomblob(32) WHERE request_id = ?').run(Buffer.from(paid.requestId, 'hex')).changes).toBe(1);
        expect(registry.prepare('DELETE FROM results WHERE request_id = ?').run(paid.requestId).changes).toBe(1);
      } finally {
        ledger.close();
        registry.close();
      }
    });
    const retried = readResult(fx.hub, await fx.hub.handleRequest(vend.id, paid.bytes));
    expect(retried).toMatchObject({ requestId: paid.requestId, status: 'approved', amountMinor: 250 });
    expect(await balanceOf(w)).toBe(750);
    // Another authorization under that request id is still a mismatch.
    const other = purchase(vend, w, lines, fx.now, { requestId: paid.requestId });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, other.bytes)).code).toBe('DUPLICATE_MISMATCH');
    expect(await balanceOf(w)).toBe(750);
  });

  it('a result lost in a crash after the ledger commit is rebuilt byte-identical from the ledger', async () => {
    const w = await funded(6000);
    const buy = purchase(pos, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now);
    const a = await fx.hub.handleRequest(pos.id, buy.bytes);
    // Simulate the crash window: the engine committed, the stored result did not survive.
    fx.hub.registry.db.prepare('DELETE FROM results WHERE request_id = ?').run(buy.requestId);
    fx.advance(2000);
    const b = await fx.hub.handleRequest(pos.id, buy.bytes);
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    expect(await balanceOf(w)).toBe(1000);
    // The operator may cancel it inside the window too (CLI `cancel`).
    expect((await fx.hub.cancel(buy.requestId)).status).toBe('approved');
    expect(await balanceOf(w)).toBe(6000);
  });

  it('answers undecodable and oversized payloads with a hub-signed error', async () => {
    const junk = await fx.hub.handleRequest(vend.id, new TextEncoder().encode('{"v":1,"type":"settlement.request","body":{"requestId":"' + 'a'.repeat(32) + '"}}'));
    expect(messageType(junk)).toBe('error');
    // Named to the authenticated sender: the request id it echoes may be anyone's.
    expect(readError(fx.hub, junk)).toMatchObject({ code: 'MALFORMED', requestId: 'a'.repeat(32), terminalId: vend.id });
    const big = await fx.hub.handleRequest(vend.id, new Uint8Array(100_000).fill(32));
    expect(readError(fx.hub, big)).toMatchObject({ code: 'TOO_LARGE', terminalId: vend.id });
    expect(readError(fx.hub, await fx.hub.handleRequest(vend.id, new Uint8Array([0xff, 0xfe]))).code).toBe('MALFORMED');
  });
});

describe('cancellation window and receipts', () => {
  it('holds the money; a wallet-signed cancellation inside the window refunds in full', async () => {
    const w = await funded(6000);
    const buy = purchase(pos, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now);
    const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, buy.bytes));
    expect(r.status).toBe('approved');
    expect(r.holdUntil).toBe(fx.now + 15 * 60_000);
    expect((await fx.hub.status()).pendingHolds.some((h) => h.walletId === w.id)).toBe(true);
    fx.advance(5 * 60_000);
    const c = signRequest(pos, { type: 'cancel', cancellation: cancellation(w, buy.requestId, fx.now) }, fx.now);
    const cr = readResult(fx.hub, await fx.hub.handleRequest(pos.id, c.bytes));
    expect(cr).toMatchObject({ status: 'approved', amountMinor: 5000 });
    expect(await balanceOf(w)).toBe(6000);
    const twice = signRequest(pos, { type: 'cancel', cancellation: cancellation(w, buy.requestId, fx.now) }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, twice.bytes)).code).toBe('ALREADY_REFUNDED');
  });

  it('a wallet dating its authorization ahead (within the skew) does not stretch the window', async () => {
    const w = await funded(6000);
    const lines = [{ sku: 'jacket', qty: 1, unitMinor: 5000 }];
    const ahead = authorize(pos, w, 'purchase', 5000, lines, fx.now + 4 * 60_000);
    const buy = signRequest(pos, { type: 'purchase', authorization: ahead, license: w.license, lines }, fx.now);
    const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, buy.bytes));
    expect(r).toMatchObject({ status: 'approved', holdUntil: fx.now + 15 * 60_000 });
    fx.advance(16 * 60_000);
    await fx.hub.releaseDueHolds();
    const late = signRequest(pos, { type: 'cancel', cancellation: cancellation(w, buy.requestId, fx.now) }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, late.bytes)).code).toBe('CANCEL_WINDOW_CLOSED');
    expect(await balanceOf(w)).toBe(1000);
  });

  it('after the window: CANCEL_WINDOW_CLOSED, and the merchant gets the money', async () => {
    const w = await funded(6000);
    const buy = purchase(pos, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, buy.bytes)).status).toBe('approved');
    const before = (await fx.hub.showAccount('snacks'))?.account.balanceMinor ?? 0;
    fx.advance(16 * 60_000);
    await fx.hub.releaseDueHolds();
    await fx.hub.engine.flush();
    expect((await fx.hub.showAccount('snacks'))?.account.balanceMinor).toBe(before + 5000);
    const c = signRequest(pos, { type: 'cancel', cancellation: cancellation(w, buy.requestId, fx.now) }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, c.bytes)).code).toBe('CANCEL_WINDOW_CLOSED');
    expect(await balanceOf(w)).toBe(1000);
  });

  it('past the window, before the hold is released: the buyer’s cancellation and the operator’s are refused CANCEL_WINDOW_CLOSED', async () => {
    const w = await funded(6000);
    const buy = purchase(pos, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, buy.bytes)).status).toBe('approved');
    fx.advance(15 * 60_000);
    const c = signRequest(pos, { type: 'cancel', cancellation: cancellation(w, buy.requestId, fx.now) }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, c.bytes)).code).toBe('CANCEL_WINDOW_CLOSED');
    await expect(fx.hub.cancel(buy.requestId)).rejects.toMatchObject({ code: 'CANCEL_WINDOW_CLOSED' });
    expect(await balanceOf(w)).toBe(1000);
    await fx.hub.releaseDueHolds(); // the merchant's now, not left for the next test's release
  });

  it('goods never delivered are refunded after the window too: a failed-dispense receipt before the release (from the holds) and after it (from the merchant), and the operator’s refund', async () => {
    const w = await funded(11_000);
    const merchant = async () => (await fx.hub.showAccount('snacks'))?.account.balanceMinor ?? 0;
    // The machine lost power while dispensing; it is back 20 minutes later, past the 15-minute window.
    const held = purchase(vend, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, held.bytes))).toMatchObject({ status: 'approved', holdUntil: fx.now + 15 * 60_000 });
    const released = purchase(vend, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, released.bytes)).status).toBe('approved');
    fx.advance(20 * 60_000);
    expect(await fx.hub.handleReceipt(vend.id, receipt(vend, held.requestId, 'failed', fx.now, 'power lost during dispense'))).toMatchObject({ status: 'refunded' });
    const before = await merchant();
    await fx.hub.releaseDueHolds();
    await fx.hub.engine.flush();
    expect(await merchant()).toBe(before + 5000); // only the one still held
    expect(await fx.hub.handleReceipt(vend.id, receipt(vend, released.requestId, 'failed', fx.now, 'power lost during dispense'))).toMatchObject({ status: 'refunded' });
    await fx.hub.engine.flush();
    expect(await merchant()).toBe(before);
    expect(await balanceOf(w)).toBe(11_000);
    // A customer's complaint weeks later: the operator refunds a windowed sale, once.
    const sold = purchase(pos, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sold.bytes)).status).toBe('approved');
    fx.advance(20 * 60_000);
    await fx.hub.releaseDueHolds();
    expect(await fx.hub.refund(sold.requestId)).toMatchObject({ status: 'approved' });
    // Asked again: a retry of that refund, nothing more moves.
    expect(await fx.hub.refund(sold.requestId)).toMatchObject({ status: 'approved' });
    expect(await balanceOf(w)).toBe(11_000);
  });

  it('refuses a cancellation signed by another wallet, and of a purchase without window', async () => {
    const w = await funded(6000);
    const thief = await funded(0);
    const buy = purchase(pos, w, [{ sku: 'jacket', qty: 1, unitMinor: 5000 }], fx.now);
    await fx.hub.handleRequest(pos.id, buy.bytes);
    const c = signRequest(pos, { type: 'cancel', cancellation: cancellation(thief, buy.requestId, fx.now) }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, c.bytes)).code).toBe('NOT_PERMITTED');
    const cola = purchase(pos, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
    await fx.hub.handleRequest(pos.id, cola.bytes);
    const c2 = signRequest(pos, { type: 'cancel', cancellation: cancellation(w, cola.requestId, fx.now) }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, c2.bytes)).code).toBe('NOT_CANCELLABLE');
  });

  it('a failed-dispense receipt from the vending machine refunds once; dispensed is recorded', async () => {
    const w = await funded(1000);
    const buy = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, buy.bytes)).status).toBe('approved');
    expect(await balanceOf(w)).toBe(750);
    const failed = receipt(vend, buy.requestId, 'failed', fx.now);
    expect(await fx.hub.handleReceipt(vend.id, failed)).toMatchObject({ status: 'refunded', requestId: buy.requestId });
    expect(await fx.hub.handleReceipt(vend.id, failed)).toMatchObject({ status: 'duplicate' });
    expect(await balanceOf(w)).toBe(1000);
    const ok = purchase(vend, w, [{ sku: 'chips', qty: 1, unitMinor: 180 }], fx.now);
    await fx.hub.handleRequest(vend.id, ok.bytes);
    expect(await fx.hub.handleReceipt(vend.id, receipt(vend, ok.requestId, 'dispensed', fx.now))).toMatchObject({ status: 'recorded' });
    // Dispensed, then failed: the first report stands, nothing is refunded.
    expect(await fx.hub.handleReceipt(vend.id, receipt(vend, ok.requestId, 'failed', fx.now))).toMatchObject({ status: 'recorded' });
    expect(await fx.hub.handleReceipt(pos.id, receipt(vend, ok.requestId, 'failed', fx.now))).toMatchObject({ status: 'rejected', code: 'TERMINAL_MISMATCH' });
    const forged = receipt({ ...vend, keyPair: generateKeyPair() }, ok.requestId, 'failed', fx.now);
    expect(await fx.hub.handleReceipt(vend.id, forged)).toMatchObject({ status: 'rejected', code: 'BAD_SIGNATURE' });
    expect(await balanceOf(w)).toBe(820);
  });

  it('a failed-dispense refund the merchant cannot cover yet (paid out) is retried: UNAVAILABLE until it can, then refunded once', async () => {
    const w = await funded(1000);
    const buy = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, buy.bytes)).status).toBe('approved');
    expect((await fx.hub.payout({ merchantId: 'snacks' })).ok).toBe(true);
    const failed = receipt(vend, buy.requestId, 'failed', fx.now);
    // Not a refusal the terminal stops at: it re-sends the receipt.
    expect(await fx.hub.handleReceipt(vend.id, failed)).toMatchObject({ status: 'rejected', code: 'UNAVAILABLE', requestId: buy.requestId });
    fx.advance(1000);
    expect(await fx.hub.handleReceipt(vend.id, failed)).toMatchObject({ status: 'rejected', code: 'UNAVAILABLE' });
    expect(await balanceOf(w)).toBe(750);
    // The merchant sells again; the next re-send is refunded, and later ones refund nothing more.
    const other = await funded(1000);
    await fx.hub.handleRequest(vend.id, purchase(vend, other, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes);
    fx.advance(1000);
    expect(await fx.hub.handleReceipt(vend.id, failed)).toMatchObject({ status: 'refunded', requestId: buy.requestId });
    fx.advance(1000);
    expect(await fx.hub.handleReceipt(vend.id, failed)).toMatchObject({ status: 'duplicate' });
    expect(await balanceOf(w)).toBe(1000);
  });

  it("a POS's failed receipt (a sale it gave up on after its timeout) refunds it once: a timeout reversal", async () => {
    const w = await funded(1000);
    const sale = purchase(pos, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes)).status).toBe('approved');
    const failed = receipt(pos, sale.requestId, 'failed', fx.now);
    expect(await fx.hub.handleReceipt(pos.id, failed)).toMatchObject({ status: 'refunded', requestId: sale.requestId });
    expect(await fx.hub.handleReceipt(pos.id, failed)).toMatchObject({ status: 'duplicate' });
    expect(await balanceOf(w)).toBe(1000);
  });
});

describe('gates, fares and tickets', () => {
  const entryRecord = (w: TestWallet, station: string, time: number) => admissionRecord(gateIn, w, station, time);

  function fareRequest(w: TestWallet, entry: Envelope<'gate.admission'> | null, exitStation: string, fareMinor: number, offline = false, fareTableVersion?: number) {
    const authorization = authorize(gateOut, w, 'fare', fareMinor, [], fx.now);
    const op = { type: 'fare' as const, authorization, license: w.license, entry, exitStation, exitTime: fx.now, ...(fareTableVersion !== undefined ? { fareTableVersion } : {}) };
    return signRequest(gateOut, op, fx.now, { offline });
  }

  it('charges the zone fare with an entry record, and the maximum fare without one', async () => {
    const w = await funded(2000);
    const entry = entryRecord(w, 'central', fx.now - 20 * 60_000);
    // central (0) → harbor (2): 150 + 2 × 100
    const paid = fareRequest(w, entry, 'harbor', 350);
    const r = readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, paid.bytes));
    expect(r).toMatchObject({ status: 'approved', amountMinor: 350 });
    expect(r.statement?.body.balanceMinor).toBe(1650);
    await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, paid.requestId, 'passed', fx.now));
    const none = readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, null, 'harbor', 800).bytes));
    expect(none).toMatchObject({ status: 'approved', amountMinor: 800 });
    // The gate computed the normal fare for a missing entry: the hub does not agree.
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, null, 'harbor', 350).bytes)).code).toBe('AMOUNT_MISMATCH');
    // One entry record pays for one exit only (the customer passed where it paid).
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, entry, 'harbor', 350).bytes)).code).toBe('REPLAY');
    expect(await balanceOf(w)).toBe(850);
  });

  it("an exit gate's failed receipt (its paid exit expired unused) refunds the fare once; not after the passage was reported, nor for any other reason", async () => {
    const w = await funded(2800);
    // A gate from before refundable paid exits reported every paid exit nobody went through as
    // failed ("no passage") and let the wallet out free later: recorded, never refunded.
    const older = fareRequest(w, null, 'harbor', 800);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, older.bytes)).status).toBe('approved');
    expect(await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, older.requestId, 'failed', fx.now, 'no passage'))).toMatchObject({ status: 'recorded' });
    expect(await balanceOf(w)).toBe(2000);
    const unused = fareRequest(w, null, 'harbor', 800);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, unused.bytes)).status).toBe('approved');
    const failed = receipt(gateOut, unused.requestId, 'failed', fx.now, PAID_EXIT_UNUSED);
    expect(await fx.hub.handleReceipt(gateOut.id, failed)).toMatchObject({ status: 'refunded', requestId: unused.requestId });
    expect(await fx.hub.handleReceipt(gateOut.id, failed)).toMatchObject({ status: 'duplicate' });
    expect(await balanceOf(w)).toBe(2000);
    const passed = fareRequest(w, null, 'harbor', 800);
    await fx.hub.handleRequest(gateOut.id, passed.bytes);
    expect(await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, passed.requestId, 'passed', fx.now))).toMatchObject({ status: 'recorded' });
    expect(await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, passed.requestId, 'failed', fx.now, PAID_EXIT_UNUSED))).toMatchObject({ status: 'recorded' });
    expect(await balanceOf(w)).toBe(1200);
  });

  it('a fare the ledger declines (short of funds) leaves its entry record unclaimed: after a top-up the same record pays for the exit', async () => {
    const w = await funded(100);
    const entry = entryRecord(w, 'central', fx.now - 20 * 60_000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, entry, 'harbor', 350).bytes)).code).toBe('INSUFFICIENT_FUNDS');
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 1000, fx.now).bytes)).status).toBe('approved');
    const paid = fareRequest(w, entry, 'harbor', 350);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, paid.bytes))).toMatchObject({ status: 'approved', amountMinor: 350 });
    await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, paid.requestId, 'passed', fx.now));
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, entry, 'harbor', 350).bytes)).code).toBe('REPLAY');
    expect(await balanceOf(w)).toBe(750);
  });

  it("an exit on a record whose fare another gate took, where nobody passed, is the same trip paid once: approved for nothing (local or online), that fare's unused paid exit not refunded; once its passage is reported, a second exit is a REPLAY, and a late passage is a double-exit incident", async () => {
    const w = await funded(2000);
    // Paid at one gate (approved), the record left on the wallet, nobody passed there; another gate
    // opened on its own decision, then asked the hub.
    const left = entryRecord(w, 'central', fx.now - 20 * 60_000);
    const fare = fareRequest(w, left, 'harbor', 350);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fare.bytes)).status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, left, 'harbor', 350, true).bytes))).toMatchObject({ status: 'approved', amountMinor: 0 });
    expect(await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, fare.requestId, 'failed', fx.now, PAID_EXIT_UNUSED))).toMatchObject({ status: 'recorded' });
    expect(await balanceOf(w)).toBe(1650);

    // A gate that waited for the hub is let open too: the customer leaves there, paid once.
    const kept = entryRecord(w, 'central', fx.now - 10 * 60_000);
    const other = fareRequest(w, kept, 'harbor', 350);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, other.bytes)).status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, kept, 'harbor', 350).bytes))).toMatchObject({ status: 'approved', amountMinor: 0 });
    expect(await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, other.requestId, 'failed', fx.now, PAID_EXIT_UNUSED))).toMatchObject({ status: 'recorded' });
    expect(await balanceOf(w)).toBe(1300);

    // Passed where it was paid: a second exit on the record is a REPLAY (a copy of the record).
    const passedRecord = entryRecord(w, 'central', fx.now - 5 * 60_000);
    const passedFare = fareRequest(w, passedRecord, 'harbor', 350);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, passedFare.bytes)).status).toBe('approved');
    await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, passedFare.requestId, 'passed', fx.now));
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, passedRecord, 'harbor', 350, true).bytes)).code).toBe('REPLAY');
    expect(await balanceOf(w)).toBe(950);

    // Its passage reported only after another gate let the customer out on the record: two exits.
    const twice = entryRecord(w, 'central', fx.now - 4 * 60_000);
    const first = fareRequest(w, twice, 'harbor', 350);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, first.bytes)).status).toBe('approved');
    const second = fareRequest(w, twice, 'harbor', 350, true);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, second.bytes))).toMatchObject({ status: 'approved', amountMinor: 0 });
    await fx.hub.handleReceipt(gateOut.id, receipt(gateOut, first.requestId, 'passed', fx.now));
    expect(fx.hub.incidents({ wallet: w.id })).toContainEqual(expect.objectContaining({ requestId: second.requestId, kind: 'double-exit', amountMinor: 350 }));
    expect(await balanceOf(w)).toBe(600);
  });

  it('a fare the gate decided locally that the hub declines is an incident for the operator (the passage went unpaid); an online decline is not', async () => {
    const w = await funded(2000);
    const online = fareRequest(w, null, 'harbor', 350);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, online.bytes)).code).toBe('AMOUNT_MISMATCH');
    expect(fx.hub.incidents({ wallet: w.id })).toEqual([]);
    // Priced by a table the hub no longer holds: the barrier opened on the gate's own decision.
    const local = fareRequest(w, null, 'harbor', 350, true);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, local.bytes)).code).toBe('AMOUNT_MISMATCH');
    // Its retry is answered from the stored result: still one incident.
    await fx.hub.handleRequest(gateOut.id, local.bytes);
    expect(fx.hub.incidents({ wallet: w.id })).toEqual([
      expect.objectContaining({ requestId: local.requestId, terminalId: gateOut.id, kind: 'declined-offline', amountMinor: 350, currency: 'EUR', detail: 'fare decided without the hub, declined: AMOUNT_MISMATCH' }),
    ]);
    expect(await balanceOf(w)).toBe(2000);
  });

  it('a fare decided without the hub is priced by the table version the gate had; online, by the table in force', async () => {
    const w = await funded(2000);
    const before = fx.hub.registry.fareVersions().at(-1)!;
    const known = before.version;
    // The fares go up while the gate has not heard of it.
    fx.hub.importFares({ ...before.table, maxFareMinor: before.table.maxFareMinor + 100 });
    fx.advance(1000);
    const old = before.table.maxFareMinor;
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, null, 'harbor', old, true, known).bytes))).toMatchObject({ status: 'approved', amountMinor: old });
    // Online the gate waits for the hub: the table in force decides, whatever version it names.
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, null, 'harbor', old, false, known).bytes)).code).toBe('AMOUNT_MISMATCH');
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, null, 'harbor', old + 100).bytes))).toMatchObject({ status: 'approved', amountMinor: old + 100 });
    // A version the hub never had: the table in force at the exit.
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, null, 'harbor', old, true, known + 99).bytes)).code).toBe('AMOUNT_MISMATCH');
    expect(await balanceOf(w)).toBe(2000 - old - (old + 100));
    fx.hub.importFares(before.table);
  });

  it('restores a used entry record the registry lost with its fare: it still pays for one exit only', async () => {
    const w = await funded(2000);
    const entry = entryRecord(w, 'central', fx.now - 20 * 60_000);
    const powerCut = await registryLosesWhatFollows(fx, 'before-fare');
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, entry, 'harbor', 350).bytes)).status).toBe('approved');
    await powerCut();
    // A new wallet authorization, the old entry record.
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, entry, 'harbor', 350).bytes)).code).toBe('REPLAY');
    expect(await balanceOf(w)).toBe(1650);
  });

  it('settles an offline gate decision that overdraws, flags the account and blocklists the wallet', async () => {
    const w = await funded(100, { offlineLimitMinor: 1000 });
    const announced: string[] = [];
    const off = fx.hub.onAnnouncement((a) => announced.push(a.topic));
    const r = readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, null, 'airport', 800, true).bytes));
    off();
    expect(r).toMatchObject({ status: 'approved', amountMinor: 800 });
    expect(await balanceOf(w)).toBe(-700);
    const status = await fx.hub.status();
    expect(status.flaggedAccounts.map((a) => a.id)).toContain(w.id);
    expect(status.blocklist.map((b) => b.wallet)).toContain(w.id);
    expect(announced).toContain(topics.announce('blocklist'));
    const bl = fx.hub.announcements().find((a) => a.topic === topics.announce('blocklist'));
    const decoded = decodeAndVerify(bl?.payload ?? new Uint8Array(), 'announce.blocklist', fx.hub.hubPublicKey);
    expect(decoded.ok && decoded.value.body.wallets.includes(w.id)).toBe(true);
    // Online, the blocklisted wallet is now refused.
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, fareRequest(w, null, 'airport', 800).bytes)).code).toBe('BLOCKLISTED');
    fx.hub.blocklistRemove(w.id);
  });

  it('sells a hub-signed ticket; its use is single: an offline use reported twice is reconciled, first wins', async () => {
    const w = await funded(1000);
    const auth = authorize(gateIn, w, 'ticket', 700, [], fx.now);
    const sale = signRequest(gateIn, { type: 'ticket.sale', authorization: auth, license: w.license, product: 'day-pass' }, fx.now);
    const r = readResult(fx.hub, await fx.hub.handleRequest(gateIn.id, sale.bytes));
    expect(r).toMatchObject({ status: 'approved', amountMinor: 700 });
    const ticket = r.ticket as Envelope<'ticket'>;
    expect(decodeAndVerify(encodeMessage(ticket), 'ticket', fx.hub.hubPublicKey).ok).toBe(true);
    expect(ticket.body).toMatchObject({ wallet: w.id, product: 'day-pass' });
    fx.advance(120_000);
    const use = (gate: TestTerminal) =>
      signRequest(gate, { type: 'ticket.use', ticket, station: 'park', usedAt: fx.now - 60_000 }, fx.now, { offline: true });
    const first = use(gateIn);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateIn.id, first.bytes)).status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, use(gateOut).bytes)).code).toBe('TICKET_USED');
    // The first gate re-uploading its own report is a retry, not a second use.
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateIn.id, first.bytes)).status).toBe('approved');
    const forged = { ...ticket, body: { ...ticket.body, validUntil: ticket.body.validUntil + 1e9 } };
    const bad = signRequest(gateIn, { type: 'ticket.use', ticket: forged, station: 'park', usedAt: fx.now }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateIn.id, bad.bytes)).code).toBe('BAD_SIGNATURE');
  });
});

describe('top-ups, transfers, history, payouts', () => {
  it('cash top-up only from a POS with an operator', async () => {
    const w = await register(fx.hub);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 500, fx.now).bytes)).status).toBe('approved');
    const fromVend = signRequest(vend, { type: 'topup', wallet: w.id, amountMinor: 500, currency: 'EUR', method: 'cash', operatorId: 'op-1' }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, fromVend.bytes)).code).toBe('NOT_PERMITTED');
    const noOperator = signRequest(pos, { type: 'topup', wallet: w.id, amountMinor: 500, currency: 'EUR', method: 'cash' }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, noOperator.bytes)).code).toBe('NOT_PERMITTED');
    expect(await balanceOf(w)).toBe(500);
  });

  it('card top-up: the sealed card goes to the authorizer; a test PAN is declined', async () => {
    const w = await register(fx.hub);
    const key = fx.hub.cardAuthorizer!.sealingPublicKey;
    const card = (pan: string) => {
      const requestId = newRequestId();
      const sealedCard = sealCard({ pan, expiry: '12/30' }, key, requestId);
      return signRequest(pos, { type: 'topup', wallet: w.id, amountMinor: 2000, currency: 'EUR', method: 'card', sealedCard }, fx.now, { requestId });
    };
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, card(TEST_PAN_APPROVED).bytes))).toMatchObject({ status: 'approved', amountMinor: 2000 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, card(TEST_PAN_DECLINED).bytes)).code).toBe('CARD_DECLINED');
    // A card sealed for another request id does not open.
    const sealedCard = sealCard({ pan: TEST_PAN_APPROVED, expiry: '12/30' }, key, newRequestId());
    const moved = signRequest(pos, { type: 'topup', wallet: w.id, amountMinor: 2000, currency: 'EUR', method: 'card', sealedCard }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, moved.bytes)).code).toBe('CARD_DECLINED');
    expect(await balanceOf(w)).toBe(2000);
  });

  it('wallet-signed transfer; a replayed transfer is refused', async () => {
    const a = await funded(1000);
    const b = await funded(0);
    const t = transfer(a, b, 300, fx.now);
    const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'transfer', transfer: t }, fx.now).bytes));
    expect(r).toMatchObject({ status: 'approved', amountMinor: 300 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'transfer', transfer: t }, fx.now).bytes)).code).toBe('REPLAY');
    const tooMuch = transfer(a, b, 5000, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'transfer', transfer: tooMuch }, fx.now).bytes)).code).toBe(
      'INSUFFICIENT_FUNDS',
    );
    expect([await balanceOf(a), await balanceOf(b)]).toEqual([700, 300]);
  });

  it('history: a wallet-signed query returns a hub-signed statement with the entries', async () => {
    const w = await funded(1000);
    await fx.hub.handleRequest(vend.id, purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes);
    const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'history', query: historyQuery(w, fx.now) }, fx.now).bytes));
    expect(r.status).toBe('approved');
    const st = r.statement as Envelope<'balance.statement'>;
    expect(decodeAndVerify(encodeMessage(st), 'balance.statement', fx.hub.hubPublicKey).ok).toBe(true);
    expect(st.body.balanceMinor).toBe(750);
    expect(st.body.entries.map((e) => e.amountMinor).sort((x, y) => x - y)).toEqual([-250, 1000]);
    const other = await funded(0);
    const forged = { ...historyQuery(w, fx.now), sig: historyQuery(other, fx.now).sig };
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'history', query: forged }, fx.now).bytes)).code).toBe('BAD_SIGNATURE');
  });

  it('pays a merchant out through the clearing adapter, recorded in the ledger', async () => {
    await fx.hub.engine.flush();
    const before = (await fx.hub.showAccount('snacks'))?.account.balanceMinor ?? 0;
    expect(before).toBeGreaterThan(0);
    const p = await fx.hub.payout({ merchantId: 'snacks', amountMinor: 100 });
    expect(p.ok && p.payout.state).toBe('sent');
    expect((await fx.hub.showAccount('snacks'))?.account.balanceMinor).toBe(before - 100);
    const tooMuch = await fx.hub.payout({ merchantId: 'snacks', amountMinor: before * 10 });
    expect(tooMuch).toMatchObject({ ok: false, code: 'INSUFFICIENT_FUNDS' });
  });

  it('a payout the bank did not confirm is retried with the same id and paid once', async () => {
    const clearing = fx.hub.clearing as SimulatedClearing;
    clearing.failNext = true;
    const p = await fx.hub.payout({ merchantId: 'snacks', amountMinor: 50 });
    expect(p).toMatchObject({ ok: false, code: 'UNAVAILABLE', payout: { state: 'failed' } });
    const balance = (await fx.hub.showAccount('snacks'))?.account.balanceMinor ?? 0;
    const sent = clearing.transfers.length;
    const retried = await fx.hub.retryPayouts();
    expect(retried.map((r) => r.state)).toEqual(['sent']);
    expect(clearing.transfers.length).toBe(sent + 1);
    // Recorded once in the ledger: the retry moved no more money.
    expect((await fx.hub.showAccount('snacks'))?.account.balanceMinor).toBe(balance);
    expect(await fx.hub.retryPayouts()).toEqual([]);
  });
});

describe('announcements and restart', () => {
  it('announces signed catalog, fares, ticket products, keys and blocklist on their retained topics', () => {
    const byTopic = new Map(fx.hub.announcements().map((a) => [a.topic, a.payload]));
    const cat = decodeAndVerify(byTopic.get(topics.catalog('snacks')) ?? '', 'announce.catalog', fx.hub.hubPublicKey);
    expect(cat.ok && cat.value.body.articles.length).toBe(SNACKS.articles.length);
    expect(decodeAndVerify(byTopic.get(topics.announce('fares')) ?? '', 'announce.fares', fx.hub.hubPublicKey).ok).toBe(true);
    const products = decodeAndVerify(byTopic.get(topics.announce('products')) ?? '', 'announce.products', fx.hub.hubPublicKey);
    expect(products.ok && products.value.body).toMatchObject({ version: 1, products: PRODUCTS.products });
    const keys = decodeAndVerify(byTopic.get(topics.announce('keys')) ?? '', 'announce.keys', fx.hub.hubPublicKey);
    expect(keys.ok && keys.value.body.revokedTerminals).toContain('vend-doomed');
  });

  it('refuses a second hub on the same data dir (one writer per ledger)', async () => {
    await expect(createHub({ dataDir: fx.dir, holdReleaseIntervalMs: 0 })).rejects.toBeInstanceOf(DataDirBusyError);
  });

  it('keeps keys, terminals, results and replay state across a restart', async () => {
    const w = await funded(1000);
    const req = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
    const a = await fx.hub.handleRequest(vend.id, req.bytes);
    const hubKey = fx.hub.hubPublicKey;
    await fx.reopen();
    expect(fx.hub.hubPublicKey).toBe(hubKey);
    const b = await fx.hub.handleRequest(vend.id, req.bytes);
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    const again = signRequest(vend, { type: 'purchase', authorization: req.authorization, license: w.license, lines: [{ sku: 'cola', qty: 1, unitMinor: 250 }] }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, again.bytes)).code).toBe('REPLAY');
    expect(await balanceOf(w)).toBe(750);
    expect(T0).toBeLessThan(fx.now);
    expect(newChallenge()).not.toBe(newChallenge());
  });
});
