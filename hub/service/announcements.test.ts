import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAndVerify, generateKeyPair, toHex, topics } from '../../protocol/index.ts';
import { createHub, type Hub } from './hub.ts';

describe('keys announcement: the enrolled gates', () => {
  let dir: string;
  let hub: Hub;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-announce-'));
    hub = await createHub({ dataDir: join(dir, 'hub'), holdReleaseIntervalMs: 0 });
  });
  afterAll(async () => {
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const keys = () => {
    const a = hub.announcements().find((x) => x.topic === topics.announce('keys'));
    const d = decodeAndVerify(a?.payload ?? new Uint8Array(), 'announce.keys', hub.trustAnchorKey);
    if (!d.ok) throw new Error(d.code);
    return d.value.body;
  };
  const key = () => toHex(generateKeyPair().publicKey);

  it('lists every enrolled, unrevoked gate with its key (no other kinds); each change is a newer version', async () => {
    const k1 = key();
    const k2 = key();
    const v0 = keys().version;
    await hub.enrollTerminal({ terminalId: 'gate-b', kind: 'gate', merchantId: 'transit', publicKey: k1 });
    const v1 = keys();
    expect(v1.gates).toEqual([{ terminalId: 'gate-b', publicKey: k1 }]);
    expect(v1.version).toBeGreaterThan(v0); // a terminal applies only a newer version
    await hub.enrollTerminal({ terminalId: 'vend-1', kind: 'vending', merchantId: 'snacks', publicKey: key() });
    expect(keys().gates).toEqual(v1.gates);
    await hub.enrollTerminal({ terminalId: 'gate-a', kind: 'gate', merchantId: 'transit', publicKey: k2 });
    const v2 = keys();
    expect(v2.gates).toEqual([{ terminalId: 'gate-a', publicKey: k2 }, { terminalId: 'gate-b', publicKey: k1 }]);
    expect(v2.version).toBeGreaterThan(v1.version);
    expect(hub.revokeTerminal('gate-b')).toBe(true);
    const v3 = keys();
    expect(v3.gates).toEqual([{ terminalId: 'gate-a', publicKey: k2 }]);
    expect(v3.revokedTerminals).toContain('gate-b');
    expect(v3.version).toBeGreaterThan(v2.version);
  });
});

describe('announcements: one that cannot be built', () => {
  it('keeps its last bytes, and neither silences the others nor stops the hub from starting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-announce-bad-'));
    let hub = await createHub({ dataDir: join(dir, 'hub'), holdReleaseIntervalMs: 0 });
    try {
      hub.importProducts({ products: [{ name: 'day', priceMinor: 500, currency: 'EUR', validityMs: 3600_000, stations: [] }] });
      const products = () => hub.announcements().find((a) => a.topic === topics.announce('products'))?.payload;
      const before = products();
      // A row no announcement may carry (a negative price): its topic fails to sign.
      hub.registry.db.prepare('UPDATE products SET product = ?').run(JSON.stringify({ name: 'day', priceMinor: -1, currency: 'EUR', validityMs: 3600_000, stations: [] }));
      hub.importCatalog({ merchantId: 'snacks', articles: [{ sku: 'cola', name: 'Cola', priceMinor: 250, currency: 'EUR' }] });
      expect(products()).toEqual(before);
      expect(hub.announcements().some((a) => a.topic === topics.catalog('snacks'))).toBe(true);
      await hub.close();
      hub = await createHub({ dataDir: join(dir, 'hub'), holdReleaseIntervalMs: 0 });
      expect(hub.announcements().map((a) => a.topic)).toEqual(expect.arrayContaining([topics.announce('blocklist'), topics.announce('keys'), topics.catalog('snacks')]));
      expect(products()).toBeUndefined();
    } finally {
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deny list: a blocklisted wallet whose license expired', () => {
  it('stays announced for the longest trip after the expiry (an exit gate honours a license that expired during the trip), then drops off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-announce-expiry-'));
    let now = Date.UTC(2026, 11, 1, 12);
    const hub = await createHub({ dataDir: join(dir, 'hub'), holdReleaseIntervalMs: 0, clock: () => now });
    try {
      const HOUR = 3600_000;
      hub.importFares({ currency: 'EUR', stations: { a: 0, b: 1 }, baseFareMinor: 100, perZoneMinor: 50, maxFareMinor: 300, maxTripMs: 2 * HOUR, utcOffsetMinutes: 0, timeBands: [] });
      const { license } = await hub.registerWallet({ validityMs: 24 * HOUR });
      const wallet = license.body.wallet;
      hub.blocklistAdd(wallet, 'lost');
      const listed = () => {
        const a = hub.announcements().find((x) => x.topic === topics.announce('blocklist'));
        const d = decodeAndVerify(a?.payload ?? new Uint8Array(), 'announce.blocklist', hub.trustAnchorKey);
        if (!d.ok) throw new Error(d.code);
        return d.value.body.wallets.includes(wallet);
      };
      now = license.body.notAfter + 1 * HOUR;
      hub.announcer.refresh();
      expect(listed()).toBe(true);
      now = license.body.notAfter + 3 * HOUR;
      hub.announcer.refresh();
      expect(listed()).toBe(false);
    } finally {
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
