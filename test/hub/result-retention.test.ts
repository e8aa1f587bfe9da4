// Stored results are pruned after the replay-state retention (they grow by one signed result per
// request); money stays right without them: a late retry is answered from the ledger (charged
// once, refundable by the machine's failed receipt), and an operator refund finds the settlement
// there. Real SQLite files, a movable clock.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { derivedId } from '../../hub/service/engine-ids.ts';
import { decodeAndVerify, PAID_EXIT_UNUSED, TICKET_NEVER_COLLECTED, topics } from '../../protocol/index.ts';
import { FARES, PRODUCTS, SNACKS, authorize, cashTopup, enroll, historyQuery, openHubFixture, purchase, readResult, receipt, register, signRequest, transfer, type HubFixture, type TestTerminal } from './kit.ts';

const DAY = 24 * 3600_000;
let fx: HubFixture;
let pos: TestTerminal;
let vend: TestTerminal;
let gate: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-ret', 'pos', 'snacks');
  vend = await enroll(fx.hub, 'vend-ret', 'vending', 'snacks');
  gate = await enroll(fx.hub, 'gate-ret', 'gate', 'transit');
  fx.hub.importCatalog(SNACKS);
  fx.hub.importProducts(PRODUCTS);
  fx.hub.importFares(FARES);
});
afterAll(async () => {
  const check = await fx.hub.verifyLedger();
  expect(check.discrepancies).toEqual([]);
  await fx.cleanup();
});

/** A funded wallet that bought a cola (250 of its 1000) at the machine, approved. */
async function colaSold() {
  const w = await register(fx.hub);
  expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 1000, fx.now).bytes)).status).toBe('approved');
  const sale = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
  expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, sale.bytes)).status).toBe('approved');
  return { w, sale, balance: async () => (await fx.hub.showAccount(w.id))?.account.balanceMinor };
}

/**
 * The hub restarts without the request's result row (and the ticket it issued): a crash after
 * the ledger's fsync, before the registry's deferred commit.
 */
async function loseStoredResult(requestId: string, options: { ticket?: boolean } = {}): Promise<void> {
  await fx.reopen(() => {
    const db = new Database(join(fx.dir, 'registry.sqlite'));
    expect(db.prepare('DELETE FROM results WHERE request_id = ?').run(requestId).changes).toBe(1);
    if (options.ticket) expect(db.prepare('DELETE FROM tickets WHERE request_id = ?').run(requestId).changes).toBe(1);
    db.close();
  });
}

/** A day pass sold at the gate (700 of the wallet's 1000), approved with its ticket. */
async function dayPassSold() {
  const w = await register(fx.hub);
  expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 1000, fx.now).bytes)).status).toBe('approved');
  const sale = signRequest(gate, { type: 'ticket.sale', authorization: authorize(gate, w, 'ticket', 700, [], fx.now), license: w.license, product: 'day-pass' }, fx.now);
  const result = readResult(fx.hub, await fx.hub.handleRequest(gate.id, sale.bytes));
  expect(result).toMatchObject({ status: 'approved', amountMinor: 700 });
  const use = (at: number) => signRequest(gate, { type: 'ticket.use', ticket: result.ticket!, station: 'park', usedAt: at }, at);
  return { w, sale, ticket: result.ticket!, use, balance: async () => (await fx.hub.showAccount(w.id))?.account.balanceMinor };
}

describe('result retention', () => {
  it('prunes results older than 35 days; a late retry is answered from the ledger, charged once, and its failed receipt refunds', async () => {
    const { sale, balance } = await colaSold();
    expect(await balance()).toBe(750);

    fx.advance(34 * DAY);
    await fx.hub.releaseDueHolds();
    expect(fx.hub.registry.result(sale.requestId)).toBeDefined();
    fx.advance(2 * DAY);
    await fx.hub.releaseDueHolds();
    expect(fx.hub.registry.result(sale.requestId)).toBeUndefined();

    // The terminal's very late retry of the same bytes (its answer was lost, its outbox kept the
    // request): answered from the ledger — approved, charged once — and stored again.
    const retry = readResult(fx.hub, await fx.hub.handleRequest(vend.id, sale.bytes));
    expect(retry).toMatchObject({ status: 'approved', amountMinor: 250, requestId: sale.requestId });
    expect(await balance()).toBe(750);
    expect(fx.hub.registry.result(sale.requestId)?.status).toBe('approved');
    // So the machine's late-approval path works: nothing was dispensed, the failed receipt refunds.
    expect(await fx.hub.handleReceipt(vend.id, receipt(vend, sale.requestId, 'failed', fx.now))).toMatchObject({ status: 'refunded' });
    expect(await balance()).toBe(1000);
    expect(await fx.hub.refund(sale.requestId)).toMatchObject({ status: 'declined', code: 'already_refunded' });
    await expect(fx.hub.cancel(sale.requestId)).rejects.toMatchObject({ code: 'NOT_CANCELLABLE' });
    await expect(fx.hub.refund('ab'.repeat(16))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('an operator refund finds a settlement whose stored result is gone in the ledger, once', async () => {
    const { sale, balance } = await colaSold();
    fx.advance(36 * DAY);
    await fx.hub.releaseDueHolds();
    expect(fx.hub.registry.result(sale.requestId)).toBeUndefined();
    expect(await fx.hub.refund(sale.requestId)).toMatchObject({ status: 'approved' });
    expect(await balance()).toBe(1000);
    expect(await fx.hub.refund(sale.requestId)).toMatchObject({ status: 'approved' }); // the same refund, answered again
    expect(await balance()).toBe(1000);
  });

  it('a result a crash lost (its deferred registry commit) is answered from the ledger, even once the request is stale and the price changed', async () => {
    const { w, sale, balance } = await colaSold();
    // The ledger's commit was fsynced; the registry's result row, written ~20 ms later, is lost.
    await loseStoredResult(sale.requestId);
    // Another wallet's purchase under the same request id is not that settlement (and leaves no
    // answer under the id for the settlement's own retry below).
    const impostor = purchase(vend, await register(fx.hub), [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now, { requestId: sale.requestId });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, impostor.bytes))).toMatchObject({ status: 'declined', code: 'DUPLICATE_MISMATCH' });
    // The machine retries the same bytes six minutes later (beyond the clock skew), after a price change.
    fx.advance(6 * 60_000);
    fx.hub.importCatalog({ ...SNACKS, articles: SNACKS.articles.map((a) => ({ ...a, priceMinor: a.priceMinor + 50 })) });
    const retry = readResult(fx.hub, await fx.hub.handleRequest(vend.id, sale.bytes));
    expect(retry).toMatchObject({ status: 'approved', amountMinor: 250, requestId: sale.requestId });
    expect(await balance()).toBe(750);
    expect(fx.hub.registry.result(sale.requestId)?.status).toBe('approved');
    // A new request at the old price is judged as new: declined, nothing moves.
    const fresh = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, fresh.bytes))).toMatchObject({ status: 'declined', code: 'AMOUNT_MISMATCH' });
    expect(await balance()).toBe(750);
    fx.hub.importCatalog(SNACKS);
  });

  it('a failed-dispense receipt for a sale whose result a crash lost refunds from the ledger, once, and only to a terminal of the payee', async () => {
    const other = await enroll(fx.hub, 'vend-other', 'vending', 'other');
    const { sale, balance } = await colaSold();
    expect(await balance()).toBe(750);
    // The machine dispensed nothing; the hub lost the result row (power cut after the ledger's fsync).
    fx.advance(10_000);
    await loseStoredResult(sale.requestId);
    expect(fx.hub.registry.result(sale.requestId)).toBeUndefined();
    // Another merchant's machine is not entitled to it; a request the ledger never saw is not found.
    expect(await fx.hub.handleReceipt(other.id, receipt(other, sale.requestId, 'failed', fx.now))).toMatchObject({ status: 'rejected', code: 'TERMINAL_MISMATCH' });
    expect(await fx.hub.handleReceipt(vend.id, receipt(vend, 'cd'.repeat(16), 'failed', fx.now))).toMatchObject({ status: 'rejected', code: 'NOT_FOUND' });
    expect(await balance()).toBe(750);
    expect(await fx.hub.handleReceipt(vend.id, receipt(vend, sale.requestId, 'failed', fx.now))).toMatchObject({ status: 'refunded', requestId: sale.requestId });
    expect(await balance()).toBe(1000);
    expect(await fx.hub.handleReceipt(vend.id, receipt(vend, sale.requestId, 'failed', fx.now))).toMatchObject({ status: 'duplicate' });
    expect(await balance()).toBe(1000);
    // The operator's refund finds it refunded already.
    expect(await fx.hub.refund(sale.requestId)).toMatchObject({ status: 'declined', code: 'already_refunded' });
    expect(await balance()).toBe(1000);
  });

  it("a fare a gate decided locally, whose result a crash lost: its unused paid exit's failed receipt refunds it from the ledger, once", async () => {
    const w = await register(fx.hub);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 1000, fx.now).bytes)).status).toBe('approved');
    const maxFare = FARES.maxFareMinor;
    const op = { type: 'fare' as const, authorization: authorize(gate, w, 'fare', maxFare, [], fx.now), license: w.license, entry: null, exitStation: 'harbor', exitTime: fx.now };
    const fare = signRequest(gate, op, fx.now, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest(gate.id, fare.bytes)).status).toBe('approved');
    const balance = async () => (await fx.hub.showAccount(w.id))?.account.balanceMinor;
    expect(await balance()).toBe(1000 - maxFare);
    fx.advance(10_000);
    await loseStoredResult(fare.requestId);
    // The ledger row is an offline purchase: at a gate that is a fare, refunded like one.
    expect(await fx.hub.handleReceipt(gate.id, receipt(gate, fare.requestId, 'failed', fx.now, PAID_EXIT_UNUSED))).toMatchObject({ status: 'refunded' });
    expect(await balance()).toBe(1000);
    expect(await fx.hub.handleReceipt(gate.id, receipt(gate, fare.requestId, 'failed', fx.now, PAID_EXIT_UNUSED))).toMatchObject({ status: 'duplicate' });
    expect(await balance()).toBe(1000);
  });

  it('a ticket sale whose result and ticket a crash lost: the retry is answered with the same ticket, charged once', async () => {
    const { sale, ticket, use, balance } = await dayPassSold();
    await loseStoredResult(sale.requestId, { ticket: true });
    const retry = readResult(fx.hub, await fx.hub.handleRequest(gate.id, sale.bytes));
    expect(retry).toMatchObject({ status: 'approved', amountMinor: 700 });
    expect(retry.ticket?.body).toEqual(ticket.body);
    expect(await balance()).toBe(300);
    // The ticket is known again: its use is single.
    expect(readResult(fx.hub, await fx.hub.handleRequest(gate.id, use(fx.now).bytes)).status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(gate.id, use(fx.now + 1).bytes)).code).toBe('TICKET_USED');
  });

  it('refunding a ticket sale voids the ticket; a used ticket is not refunded', async () => {
    const sold = await dayPassSold();
    expect(await fx.hub.refund(sold.sale.requestId)).toMatchObject({ status: 'approved' });
    expect(await sold.balance()).toBe(1000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gate.id, sold.use(fx.now).bytes)).code).toBe('TICKET_USED');
    // Asked again: the same refund, nothing more.
    expect(await fx.hub.refund(sold.sale.requestId)).toMatchObject({ status: 'approved' });
    expect(await sold.balance()).toBe(1000);

    const used = await dayPassSold();
    expect(readResult(fx.hub, await fx.hub.handleRequest(gate.id, used.use(fx.now).bytes)).status).toBe('approved');
    await expect(fx.hub.refund(used.sale.requestId)).rejects.toMatchObject({ code: 'TICKET_USED' });
    expect(await used.balance()).toBe(300);
  });

  it("a POS's failure receipt for a ticket never collected refunds the sale and voids the ticket; not for a used ticket, nor for another reason", async () => {
    const till = await enroll(fx.hub, 'pos-tickets', 'pos', 'transit');
    const sell = async () => {
      const w = await register(fx.hub);
      expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 1000, fx.now).bytes)).status).toBe('approved');
      const sale = signRequest(till, { type: 'ticket.sale', authorization: authorize(till, w, 'ticket', 700, [], fx.now), license: w.license, product: 'day-pass' }, fx.now);
      const result = readResult(fx.hub, await fx.hub.handleRequest(till.id, sale.bytes));
      expect(result).toMatchObject({ status: 'approved', amountMinor: 700 });
      const use = signRequest(gate, { type: 'ticket.use', ticket: result.ticket!, station: 'park', usedAt: fx.now }, fx.now);
      return { sale, use, balance: async () => (await fx.hub.showAccount(w.id))?.account.balanceMinor };
    };
    const uncollected = await sell();
    const denyList = () => {
      const a = fx.hub.announcements().find((x) => x.topic === topics.announce('blocklist'));
      const d = decodeAndVerify(a?.payload ?? new Uint8Array(), 'announce.blocklist', fx.hub.hubPublicKey);
      if (!d.ok) throw new Error(d.code);
      return d.value.body;
    };
    const before = denyList().version;
    const failed = receipt(till, uncollected.sale.requestId, 'failed', fx.now, TICKET_NEVER_COLLECTED);
    expect(await fx.hub.handleReceipt(till.id, failed)).toMatchObject({ status: 'refunded' });
    // Announced at once on the deny list: a gate deciding offline refuses the ticket too.
    const voidedTicket = readResult(fx.hub, await fx.hub.handleRequest(till.id, uncollected.sale.bytes)).ticket!.body.ticketId;
    expect(denyList()).toMatchObject({ version: before + 1, tickets: expect.arrayContaining([voidedTicket]) });
    expect(await fx.hub.handleReceipt(till.id, failed)).toMatchObject({ status: 'duplicate' });
    expect(await uncollected.balance()).toBe(1000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gate.id, uncollected.use.bytes)).code).toBe('TICKET_USED');

    const used = await sell();
    expect(readResult(fx.hub, await fx.hub.handleRequest(gate.id, used.use.bytes)).status).toBe('approved');
    expect(await fx.hub.handleReceipt(till.id, receipt(till, used.sale.requestId, 'failed', fx.now, TICKET_NEVER_COLLECTED))).toMatchObject({ status: 'recorded' });
    expect(await used.balance()).toBe(300);

    const other = await sell();
    expect(await fx.hub.handleReceipt(till.id, receipt(till, other.sale.requestId, 'failed', fx.now, 'printer jam'))).toMatchObject({ status: 'recorded' });
    expect(await other.balance()).toBe(300);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gate.id, other.use.bytes)).status).toBe('approved');
  });

  it('a transfer whose stored result was pruned: its own retry gets the ledger answer; another transfer, or a history query, under its id is DUPLICATE_MISMATCH', async () => {
    const a = await register(fx.hub);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, a, 1000, fx.now).bytes)).status).toBe('approved');
    const b = await register(fx.hub);
    const c = await register(fx.hub);
    const first = signRequest(pos, { type: 'transfer', transfer: transfer(a, b, 100, fx.now) }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, first.bytes)).status).toBe('approved');
    fx.advance(36 * DAY);
    await fx.hub.releaseDueHolds(); // prunes results older than 35 days
    expect(fx.hub.registry.result(first.requestId)).toBeUndefined();
    const history = signRequest(pos, { type: 'history', query: historyQuery(a, fx.now) }, fx.now, { requestId: first.requestId });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, history.bytes))).toMatchObject({ status: 'declined', code: 'DUPLICATE_MISMATCH' });
    const other = signRequest(pos, { type: 'transfer', transfer: transfer(a, c, 900, fx.now) }, fx.now, { requestId: first.requestId });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, other.bytes))).toMatchObject({ status: 'declined', code: 'DUPLICATE_MISMATCH' });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, first.bytes))).toMatchObject({ status: 'approved', amountMinor: 100 });
    const balances = await Promise.all([a, b, c].map(async (w) => (await fx.hub.showAccount(w.id))?.account.balanceMinor));
    expect(balances).toEqual([900, 100, 0]);
  });

  it('a top-up whose stored result a crash lost: the same id for another wallet or amount is not that top-up', async () => {
    const w = await register(fx.hub);
    const other = await register(fx.hub);
    const topup = (wallet: typeof w, amountMinor: number, requestId?: string) =>
      signRequest(pos, { type: 'topup', wallet: wallet.id, amountMinor, currency: 'EUR', method: 'cash', operatorId: 'op-1' }, fx.now, requestId ? { requestId } : {});
    const first = topup(w, 1000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, first.bytes)).status).toBe('approved');
    await loseStoredResult(first.requestId);
    for (const impostor of [topup(other, 1000, first.requestId), topup(w, 90_000, first.requestId)]) {
      expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, impostor.bytes))).toMatchObject({ status: 'declined', code: 'DUPLICATE_MISMATCH' });
    }
    // The top-up's own retry is still answered from the ledger: approved, credited once.
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, first.bytes))).toMatchObject({ status: 'approved', amountMinor: 1000 });
    expect((await fx.hub.showAccount(w.id))?.account.balanceMinor).toBe(1000);
    expect((await fx.hub.showAccount(other.id))?.account.balanceMinor).toBe(0);
  });

  it('a ticket-sale refund the ledger declines (the merchant already paid out) leaves the ticket usable, and is tried anew later', async () => {
    const sold = await dayPassSold();
    const payout = await fx.hub.payout({ merchantId: 'transit' });
    expect(payout.ok).toBe(true);
    expect(await fx.hub.refund(sold.sale.requestId)).toMatchObject({ status: 'declined', code: 'insufficient_funds' });
    expect(await sold.balance()).toBe(300);
    // The ticket was given back: an online gate would admit it (checked without using it up).
    expect(fx.hub.registry.claimTicketUse(derivedId('ticket', sold.sale.requestId), 'ef'.repeat(16), 'probe', 'x', fx.now)).toBe('fresh');
    fx.hub.registry.releaseTicketUse(derivedId('ticket', sold.sale.requestId), 'ef'.repeat(16));
    // Once the merchant has money again, the refund is tried anew, not answered with the old decline.
    await dayPassSold();
    fx.advance(1000);
    expect(await fx.hub.refund(sold.sale.requestId)).toMatchObject({ status: 'approved', amountMinor: 700 });
    expect(await sold.balance()).toBe(1000);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gate.id, sold.use(fx.now).bytes)).code).toBe('TICKET_USED');
    // And only once, however often it is asked.
    fx.advance(1000);
    expect(await fx.hub.refund(sold.sale.requestId)).toMatchObject({ status: 'declined', code: 'already_refunded' });
    expect(await sold.balance()).toBe(1000);
  });
});
