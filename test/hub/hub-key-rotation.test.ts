// Hub key rotation through the settlement service (real SQLite data dir, movable clock): which
// key signs results, statements, tickets and the keys announcement before, during and after the
// overlap, and which hub-signed tickets the hub still honours.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAndVerify, decodeMessage, encodeMessage, signMessage, verifyTerminalCertificate, TICKET_HORIZON_MS, toHex, topics, type Envelope } from '../../protocol/index.ts';
import { loadOrCreateEd25519Key } from '../../hub/registry/keys.ts';
import { authorize, enroll, cashTopup, openHubFixture, PRODUCTS, T0, readResult, register, signRequest, type HubFixture, type TestTerminal } from './kit.ts';

const HOUR = 3600_000;
let fx: HubFixture;
let pos: TestTerminal;
let gate: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-r', 'pos', 'snacks');
  gate = await enroll(fx.hub, 'gate-r', 'gate', 'transit');
  fx.hub.importProducts(PRODUCTS);
});
afterAll(async () => {
  await fx.cleanup();
});

async function buyDayPass(): Promise<{ result: ReturnType<typeof readResult>; ticket: Envelope<'ticket'> }> {
  const w = await register(fx.hub);
  expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 1000, fx.now).bytes)).status).toBe('approved');
  const auth = authorize(gate, w, 'ticket', 700, [], fx.now);
  const sale = signRequest(gate, { type: 'ticket.sale', authorization: auth, license: w.license, product: 'day-pass' }, fx.now);
  const result = readResult(fx.hub, await fx.hub.handleRequest(gate.id, sale.bytes));
  expect(result.status).toBe('approved');
  return { result, ticket: result.ticket as Envelope<'ticket'> };
}

async function useTicket(ticket: Envelope<'ticket'>): Promise<ReturnType<typeof readResult>> {
  const use = signRequest(gate, { type: 'ticket.use', ticket, station: 'park', usedAt: fx.now }, fx.now);
  return readResult(fx.hub, await fx.hub.handleRequest(gate.id, use.bytes));
}

function keysAnnouncement() {
  const a = fx.hub.announcements().find((x) => x.topic === topics.announce('keys'));
  const d = decodeAndVerify(a?.payload ?? new Uint8Array(), 'announce.keys', fx.hub.trustAnchorKey);
  if (!d.ok) throw new Error(`keys announcement does not verify under the anchor: ${d.code}`);
  return d.value.body;
}

describe('hub key rotation', () => {
  it('a hub-signed ticket valid for longer than a ticket can be is refused (a leaked retired key cannot mint passes forever)', async () => {
    const key = loadOrCreateEd25519Key(fx.dir, 'hub-signing');
    const w = await register(fx.hub);
    const forever = signMessage('ticket', { ticketId: 'ab'.repeat(16), wallet: w.id, product: 'day-pass', stations: [], validFrom: fx.now - 1000, validUntil: fx.now + TICKET_HORIZON_MS, issuedAt: fx.now - 1000, hubKey: toHex(key.publicKey) }, key.secretKey);
    expect(await useTicket(forever)).toMatchObject({ status: 'declined', code: 'TICKET_INVALID' });
  });

  it('old key until the switch, new key after, per result; tickets honoured by the key of their issue time; duplicates answered under the current key; the ring survives a restart', async () => {
    const a = fx.hub.hubPublicKey;
    const before = await buyDayPass();
    const unused = await buyDayPass();
    expect(before.ticket.body.hubKey).toBe(a);
    const versionBefore = keysAnnouncement().version;

    const b = fx.hub.rotateHubKey({ activateInMs: HOUR, retireAfterMs: 2 * HOUR }).publicKey;
    // Announced at once, under the old key, with both windows; the old key still signs.
    expect(keysAnnouncement()).toMatchObject({ hubKey: a, hubKeys: [{ publicKey: a, notAfter: fx.now + 3 * HOUR }, { publicKey: b, notBefore: fx.now + HOUR }] });
    expect(keysAnnouncement().version).toBeGreaterThan(versionBefore);
    const w = await register(fx.hub);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, w, 1000, fx.now).bytes)).status).toBe('approved');
    const sale = signRequest(gate, { type: 'ticket.sale', authorization: authorize(gate, w, 'ticket', 700, [], fx.now), license: w.license, product: 'day-pass' }, fx.now);
    const first = readResult(fx.hub, await fx.hub.handleRequest(gate.id, sale.bytes));
    expect(first.hubKey).toBe(a);

    // The switch needs no refresh: every result is signed by the key active at its time.
    fx.advance(HOUR);
    const during = await buyDayPass();
    expect(during.result.hubKey).toBe(b);
    expect(during.ticket.body.hubKey).toBe(b);
    expect(decodeAndVerify(encodeMessage(during.result.statement as Envelope<'balance.statement'>), 'balance.statement', b).ok).toBe(true);
    // A retry of a request settled before the switch: same answer, signed by the current key.
    const again = readResult(fx.hub, await fx.hub.handleRequest(gate.id, sale.bytes));
    const { hubKey: k1, statement: s1, ...rest1 } = first;
    const { hubKey: k2, statement: s2, ...rest2 } = again;
    expect([k1, k2]).toEqual([a, b]);
    expect(rest2).toEqual(rest1);
    expect(s2?.body).toEqual({ ...s1?.body, hubKey: b });
    expect(decodeAndVerify(encodeMessage(s2 as Envelope<'balance.statement'>), 'balance.statement', b).ok).toBe(true);
    fx.hub.refreshKeys();
    expect(keysAnnouncement().hubKey).toBe(a);
    expect((await useTicket(before.ticket)).status).toBe('approved');

    const ring = fx.hub.hubKeys();
    await fx.reopen();
    expect(fx.hub.hubKeys()).toEqual(ring);
    expect(fx.hub.hubPublicKey).toBe(b);

    fx.advance(2 * HOUR + 1);
    fx.hub.refreshKeys();
    // Retired: the announcement moves to the new key and keeps the old one for its tickets.
    expect(keysAnnouncement()).toMatchObject({ hubKey: b, hubKeys: [{ publicKey: a }, { publicKey: b }] });
    expect((await useTicket(during.ticket)).status).toBe('approved');
    expect(unused.ticket.body.hubKey).toBe(a);
    expect((await useTicket(unused.ticket)).status).toBe('approved');
  });

  it('follows the window edges on its own timer, however the clock reads fall between them', async () => {
    // Every reading of this clock moves it 1 ms: only the hub's own timer reads it here, so the
    // announcement reaches the retired state only if the timer chain never stalls at an edge.
    let t = T0;
    const own = await openHubFixture({ clock: () => t++ });
    try {
      const signerOf = (hub: typeof own.hub) => {
        const d = decodeMessage(hub.announcements().find((x) => x.topic === topics.announce('keys'))?.payload ?? new Uint8Array(), 'announce.keys');
        return d.ok ? d.value.body.hubKey : undefined;
      };
      const old = signerOf(own.hub);
      const next = own.hub.rotateHubKey({ activateInMs: 10, retireAfterMs: 10 });
      expect(signerOf(own.hub)).toBe(old);
      const deadline = Date.now() + 10_000;
      while (signerOf(own.hub) !== next.publicKey && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(signerOf(own.hub)).toBe(next.publicKey);
    } finally {
      await own.cleanup();
    }
  });

  it('a leak drops the whole ring at once: the new key signs and anchors, tickets of the leaked keys are refused', async () => {
    const leaked = fx.hub.hubPublicKey;
    const bought = await buyDayPass();
    expect(bought.ticket.body.hubKey).toBe(leaked);
    const c = fx.hub.rotateHubKey({ activateInMs: 0, retireAfterMs: 0, compromised: true }).publicKey;
    expect(fx.hub.hubPublicKey).toBe(c);
    expect(fx.hub.trustAnchorKey).toBe(c);
    expect(keysAnnouncement().hubKeys.map((k) => k.publicKey)).toEqual([c]);
    expect(await useTicket(bought.ticket)).toMatchObject({ status: 'declined', code: 'UNKNOWN_ISSUER' });
    expect((await buyDayPass()).result.hubKey).toBe(c);
    // Certificates signed by the leaked key: each enrolled terminal gets a new one under the new anchor.
    const before = fx.hub.registry.terminal('gate-r')!.certificate;
    expect(verifyTerminalCertificate(before, { trustedIssuers: [c], nowMs: fx.now }).ok).toBe(false);
    const cert = fx.hub.reissueCertificate('gate-r');
    expect(cert.body).toMatchObject({ terminalId: 'gate-r', kind: 'gate', merchantId: 'transit', publicKey: before.body.publicKey, issuerKey: c });
    expect(verifyTerminalCertificate(cert, { trustedIssuers: [c], nowMs: fx.now }).ok).toBe(true);
    expect(fx.hub.registry.terminal('gate-r')!.certificate).toEqual(cert);
    expect(() => fx.hub.reissueCertificate('nobody')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    fx.hub.revokeTerminal('pos-r');
    expect(() => fx.hub.reissueCertificate('pos-r')).toThrow(expect.objectContaining({ code: 'REVOKED' }));
  });
});
