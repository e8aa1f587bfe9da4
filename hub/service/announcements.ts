/**
 * Retained, hub-signed announcements (issue 4): blocklist, catalog per merchant, fare table,
 * ticket products and keys (the hub key ring with its windows, for rotation: hub-keyring.ts; the
 * issuer keys; revoked terminals; the enrolled gates' keys, which exit gates check admission
 * records with). Each is rebuilt from the registry; its `time` is the time of the change it announces (for keys: the latest
 * revocation or key start, which may lie ahead), so an unchanged announcement signs to identical
 * bytes and is not republished. The keys announcement changes signer and list at window edges
 * without a new version: terminals apply the windows themselves and only keep the newer bytes.
 */
import {
  encodeMessage,
  MAX_ANNOUNCED_GATES,
  signMessage,
  toHex,
  topics,
} from '../../protocol/index.ts';
import { announcedAt, type HubKeyring } from '../registry/hub-keyring.ts';
import type { Registry } from '../registry/registry.ts';

export interface Announcement {
  readonly topic: string;
  readonly payload: Uint8Array;
}

export class Announcer {
  readonly #registry: Registry;
  readonly #keyring: HubKeyring;
  readonly #clock: () => number;
  readonly #issuerKeys: readonly string[];
  readonly #current = new Map<string, Uint8Array>();
  readonly #listeners = new Set<(a: Announcement) => void>();

  constructor(registry: Registry, keyring: HubKeyring, issuerKeys: readonly string[], clock: () => number) {
    this.#registry = registry;
    this.#keyring = keyring;
    this.#clock = clock;
    this.#issuerKeys = issuerKeys;
    for (const a of this.#build(clock())) this.#current.set(a.topic, a.payload);
  }

  all(): Announcement[] {
    return [...this.#current].map(([topic, payload]) => ({ topic, payload }));
  }

  onAnnouncement(cb: (a: Announcement) => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  /** Rebuilds every announcement and tells listeners about the ones whose bytes changed. */
  refresh(nowMs = this.#clock()): Announcement[] {
    const changed: Announcement[] = [];
    for (const a of this.#build(nowMs)) {
      const old = this.#current.get(a.topic);
      if (old && Buffer.compare(Buffer.from(old), Buffer.from(a.payload)) === 0) continue;
      this.#current.set(a.topic, a.payload);
      changed.push(a);
    }
    for (const a of changed) for (const cb of this.#listeners) cb(a);
    return changed;
  }

  #build(now: number): Announcement[] {
    const r = this.#registry;
    const signing = this.#keyring.signingKey(now);
    const hubKey = toHex(signing.publicKey);
    const sk = signing.secretKey;
    // The keys announcement is signed by the oldest active key: every terminal trusts that one.
    const anchor = this.#keyring.anchorKey(now);
    const ring = announcedAt(this.#keyring.keys(), now);
    const out: Announcement[] = [];
    out.push({
      topic: topics.announce('blocklist'),
      payload: encodeMessage(
        signMessage('announce.blocklist', { version: r.blocklistVersion(), wallets: r.blocklist().map((b) => b.wallet), time: r.meta('blocklist_time'), hubKey }, sk),
      ),
    });
    const revoked = r.terminals().filter((t) => t.revoked);
    // Exit gates verify admission records against the enrolled gates' keys. Enrolling a gate does
    // not bump keys_version (only rotations and revocations do), so the version also counts every
    // gate ever enrolled: both only grow, and a terminal applies only a newer version.
    const allGates = r.terminals().filter((t) => t.kind === 'gate');
    const gates = allGates
      .filter((t) => !t.revoked)
      .sort((a, b) => b.enrolledMs - a.enrolledMs || (a.terminalId < b.terminalId ? -1 : 1))
      .slice(0, MAX_ANNOUNCED_GATES) // the newest; records of a gate left off pay the maximum fare
      .map((t) => ({ terminalId: t.terminalId, publicKey: t.publicKey }))
      .sort((a, b) => (a.terminalId < b.terminalId ? -1 : a.terminalId > b.terminalId ? 1 : 0));
    out.push({
      topic: topics.announce('keys'),
      payload: encodeMessage(
        signMessage(
          'announce.keys',
          {
            version: r.meta('keys_version') + allGates.length,
            hubKeys: ring.map(({ publicKey, notBefore, notAfter }) => ({ publicKey, notBefore, notAfter })),
            issuerKeys: [...this.#issuerKeys],
            revokedTerminals: revoked.map((t) => t.terminalId).sort(),
            gates,
            time: Math.max(revoked.reduce((m, t) => Math.max(m, t.revokedMs ?? 0), 0), ...allGates.map((t) => t.enrolledMs), ...ring.map((k) => k.notBefore)),
            hubKey: toHex(anchor.publicKey),
          },
          anchor.secretKey,
        ),
      ),
    });
    const fares = r.fareVersions().at(-1);
    if (fares) {
      out.push({
        topic: topics.announce('fares'),
        payload: encodeMessage(signMessage('announce.fares', { version: fares.version, table: fares.table, time: fares.timeMs, hubKey }, sk)),
      });
    }
    const productsVersion = r.meta('products_version');
    if (productsVersion > 0) {
      out.push({
        topic: topics.announce('products'),
        payload: encodeMessage(signMessage('announce.products', { version: productsVersion, products: r.products(), time: r.meta('products_time'), hubKey }, sk)),
      });
    }
    for (const c of r.catalogs()) {
      out.push({
        topic: topics.catalog(c.merchantId),
        payload: encodeMessage(
          signMessage('announce.catalog', { merchantId: c.merchantId, version: c.version, articles: [...c.articles], time: c.timeMs, hubKey }, sk),
        ),
      });
    }
    return out;
  }
}
