/**
 * Retained, hub-signed announcements (issue 4): blocklist, catalog per merchant, fare table,
 * ticket products and keys (the hub key ring with its windows, for rotation: hub-keyring.ts; the
 * issuer keys; revoked terminals; the enrolled gates' keys, which exit gates check admission
 * records with). Each is rebuilt from the registry; its `time` is the time of the change it announces (for keys: the latest
 * revocation or key start, which may lie ahead), so an unchanged announcement signs to identical
 * bytes and is not republished. The keys announcement changes signer and list at window edges
 * without a new version: terminals apply the windows themselves and only keep the newer bytes.
 */
import type { Logger } from 'pino';
import {
  encodeMessage,
  MAX_ANNOUNCED_BLOCKLIST,
  MAX_ANNOUNCED_GATES,
  MAX_ANNOUNCED_VOID_TICKETS,
  TICKET_HORIZON_MS,
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
  readonly #logger: Logger | undefined;
  readonly #current = new Map<string, Uint8Array>();
  readonly #listeners = new Set<(a: Announcement) => void>();

  constructor(registry: Registry, keyring: HubKeyring, issuerKeys: readonly string[], clock: () => number, logger?: Logger) {
    this.#registry = registry;
    this.#keyring = keyring;
    this.#clock = clock;
    this.#issuerKeys = issuerKeys;
    this.#logger = logger;
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

  /**
   * Every topic on its own: one that cannot be built (a list past its schema's bound) is logged
   * and keeps its last bytes; it must not silence the others, or stop the hub from starting.
   */
  #build(now: number): Announcement[] {
    const signing = this.#keyring.signingKey(now);
    const signer = { hubKey: toHex(signing.publicKey), sk: signing.secretKey };
    const builders: Array<[string, () => Announcement[]]> = [
      ['blocklist', () => [this.#blocklist(now, signer)]],
      ['keys', () => [this.#keys(now)]],
      ['fares', () => this.#fares(signer)],
      ['products', () => this.#products(signer)],
      ['catalogs', () => this.#catalogs(signer)],
    ];
    const out: Announcement[] = [];
    for (const [name, build] of builders) {
      try {
        out.push(...build());
      } catch (err) {
        this.#logger?.error({ announcement: name, err }, 'announcement not built: terminals keep the previous one');
      }
    }
    return out;
  }

  #blocklist(now: number, { hubKey, sk }: Signer): Announcement {
    const r = this.#registry;
    // Listed for a trip's length past its licenses' expiry: an exit gate still honours a license
    // that expired during the trip (unless the wallet is listed), as the hub does.
    const longestTripMs = r.fareVersions().at(-1)?.table.maxTripMs ?? 0;
    const { wallets, leftOff } = r.announcedBlocklist(now - longestTripMs, MAX_ANNOUNCED_BLOCKLIST);
    const tickets = r.voidedTickets(now - TICKET_HORIZON_MS, MAX_ANNOUNCED_VOID_TICKETS);
    if (leftOff > 0) this.#logger?.error({ leftOff, cap: MAX_ANNOUNCED_BLOCKLIST }, 'blocklist longer than an announcement holds: the oldest entries are left off (the hub still refuses them online)');
    return {
      topic: topics.announce('blocklist'),
      payload: encodeMessage(signMessage('announce.blocklist', { version: r.blocklistVersion(), wallets, ...(tickets.length > 0 ? { tickets } : {}), time: r.meta('blocklist_time'), hubKey }, sk)),
    };
  }

  #keys(now: number): Announcement {
    const r = this.#registry;
    // The keys announcement is signed by the oldest active key: every terminal trusts that one.
    const anchor = this.#keyring.anchorKey(now);
    const ring = announcedAt(this.#keyring.keys(), now);
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
    return {
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
    };
  }

  #fares({ hubKey, sk }: Signer): Announcement[] {
    const fares = this.#registry.fareVersions().at(-1);
    if (!fares) return [];
    return [{ topic: topics.announce('fares'), payload: encodeMessage(signMessage('announce.fares', { version: fares.version, table: fares.table, time: fares.timeMs, hubKey }, sk)) }];
  }

  #products({ hubKey, sk }: Signer): Announcement[] {
    const r = this.#registry;
    const version = r.meta('products_version');
    if (version === 0) return [];
    return [
      {
        topic: topics.announce('products'),
        payload: encodeMessage(signMessage('announce.products', { version, products: r.products(), time: r.meta('products_time'), hubKey }, sk)),
      },
    ];
  }

  #catalogs({ hubKey, sk }: Signer): Announcement[] {
    return this.#registry.catalogs().map((c) => ({
      topic: topics.catalog(c.merchantId),
      payload: encodeMessage(signMessage('announce.catalog', { merchantId: c.merchantId, version: c.version, articles: [...c.articles], time: c.timeMs, hubKey }, sk)),
    }));
  }
}

type Signer = { readonly hubKey: string; readonly sk: Uint8Array };
