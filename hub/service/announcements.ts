/**
 * Retained, hub-signed announcements (issue 4): blocklist, catalog per merchant, fare table and
 * keys. Each is rebuilt from the registry; its `time` is the time of the change it announces, so
 * an unchanged announcement signs to identical bytes and is not republished.
 */
import {
  encodeMessage,
  signMessage,
  toHex,
  topics,
  type KeyPair,
} from '../../protocol/index.ts';
import type { Registry } from '../registry/registry.ts';

export interface Announcement {
  readonly topic: string;
  readonly payload: Uint8Array;
}

const FOREVER_MS = 253_402_300_799_000; // 9999-12-31

export class Announcer {
  readonly #registry: Registry;
  readonly #hub: KeyPair;
  readonly #issuerKeys: readonly string[];
  readonly #current = new Map<string, Uint8Array>();
  readonly #listeners = new Set<(a: Announcement) => void>();

  constructor(registry: Registry, hub: KeyPair, issuerKeys: readonly string[]) {
    this.#registry = registry;
    this.#hub = hub;
    this.#issuerKeys = issuerKeys;
    for (const a of this.#build()) this.#current.set(a.topic, a.payload);
  }

  all(): Announcement[] {
    return [...this.#current].map(([topic, payload]) => ({ topic, payload }));
  }

  onAnnouncement(cb: (a: Announcement) => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  /** Rebuilds every announcement and tells listeners about the ones whose bytes changed. */
  refresh(): Announcement[] {
    const changed: Announcement[] = [];
    for (const a of this.#build()) {
      const old = this.#current.get(a.topic);
      if (old && Buffer.compare(Buffer.from(old), Buffer.from(a.payload)) === 0) continue;
      this.#current.set(a.topic, a.payload);
      changed.push(a);
    }
    for (const a of changed) for (const cb of this.#listeners) cb(a);
    return changed;
  }

  #build(): Announcement[] {
    const r = this.#registry;
    const hubKey = toHex(this.#hub.publicKey);
    const sk = this.#hub.secretKey;
    const out: Announcement[] = [];
    out.push({
      topic: topics.announce('blocklist'),
      payload: encodeMessage(
        signMessage('announce.blocklist', { version: r.blocklistVersion(), wallets: r.blocklist().map((b) => b.wallet), time: r.meta('blocklist_time'), hubKey }, sk),
      ),
    });
    const revoked = r.terminals().filter((t) => t.revoked);
    out.push({
      topic: topics.announce('keys'),
      payload: encodeMessage(
        signMessage(
          'announce.keys',
          {
            version: r.meta('keys_version'),
            hubKeys: [{ publicKey: hubKey, notBefore: 0, notAfter: FOREVER_MS }],
            issuerKeys: [...this.#issuerKeys],
            revokedTerminals: revoked.map((t) => t.terminalId).sort(),
            time: revoked.reduce((m, t) => Math.max(m, t.revokedMs ?? 0), 0),
            hubKey,
          },
          sk,
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
