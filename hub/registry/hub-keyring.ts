/**
 * Hub signing-key rotation (issue 4, retained announcements). The hub keeps a small ring of
 * signing keys, each with a validity window. A new key is announced ahead of its `notBefore`, so
 * terminals that are online learn it before the first result it signs; the old key stays trusted
 * for a grace period after that, so results in flight keep verifying.
 *
 * Which key does what, at time t:
 * - signing key: the newest key already active — signs results, tickets, statements, errors and
 *   the other announcements;
 * - anchor key: the oldest key still active — signs the keys announcement and terminal
 *   certificates, because it is the key every terminal provisioned before the rotation trusts;
 * - a hub-signed record that outlives the window (a ticket) is honoured when its key is in the
 *   ring and had not retired when it was issued (protocol `ticketKeysAt`). Retired keys therefore
 *   stay in the ring (and announced, so gates can check such tickets) for TICKET_HORIZON_MS;
 *   their secrets are not loaded at the next start. A rotation for a leak (the data dir's key
 *   files exposed) drops every key of the ring instead.
 * The functions here are pure; `HubKeyring` adds the registry and the secret key files.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, keyActiveAt, TICKET_HORIZON_MS, ticketKeysAt, toHex, type HubKeyWindow, type KeyPair } from '../../protocol/index.ts';
import { loadEd25519Key, loadOrCreateEd25519Key, writeNewSecretKey } from './keys.ts';

export type { HubKeyWindow };

/** Where the key's secret lives, relative to the data dir. */
export interface HubKeyEntry extends HubKeyWindow {
  readonly file: string;
}

/** 9999-12-31: the first key, and the newest after a rotation, never expire on their own. */
export const FOREVER_MS = 253_402_300_799_000;
export { TICKET_HORIZON_MS };
/** The keys announcement carries at most this many keys (protocol HubKeyRing). */
export const MAX_ANNOUNCED_KEYS = 8;

const FIRST_KEY_FILE = 'hub-signing.key';
const KEY_FILE = /^hub-signing(-[0-9a-f]{16})?\.key$/;

export class RotationError extends Error {
  readonly code = 'ROTATION_REFUSED';
  constructor(why: string) {
    super(why);
    this.name = 'RotationError';
  }
}

/** Keys worth announcing at t: active, coming, or retired less than the ticket horizon ago. */
export function announcedAt<K extends HubKeyWindow>(keys: readonly K[], t: number): K[] {
  return keys.filter((k) => t - TICKET_HORIZON_MS <= k.notAfter).sort((a, b) => a.notBefore - b.notBefore);
}

export function signingKeyAt<K extends HubKeyWindow>(keys: readonly K[], t: number): K {
  const live = keys.filter((k) => keyActiveAt(k, t));
  // With no key active (a clock set far back, or every window closed) sign with the newest key:
  // terminals reject what they cannot trust, which is better than signing with nothing.
  const pool = live.length > 0 ? live : [...keys];
  const key = pool.reduce<K | undefined>((best, k) => (best === undefined || k.notBefore > best.notBefore ? k : best), undefined);
  if (!key) throw new RotationError('the hub has no signing key');
  return key;
}

export function anchorKeyAt<K extends HubKeyWindow>(keys: readonly K[], t: number): K {
  const live = keys.filter((k) => keyActiveAt(k, t));
  if (live.length === 0) return signingKeyAt(keys, t);
  return live.reduce((best, k) => (k.notBefore < best.notBefore ? k : best));
}

/** True when a ticket signed by `publicKey` and issued at `issuedAt` is still honoured at `nowMs`. */
export function honoursTicket(keys: readonly HubKeyWindow[], publicKey: string, issuedAt: number, nowMs: number): boolean {
  return ticketKeysAt(keys, issuedAt, nowMs).includes(publicKey);
}

/** The first time after t at which a window opens or closes (the hub re-announces then). */
export function nextKeyEdge(keys: readonly HubKeyWindow[], t: number): number | undefined {
  const edges = keys.flatMap((k) => [k.notBefore, k.notAfter + 1]).filter((e) => e > t && e < FOREVER_MS);
  return edges.length > 0 ? Math.min(...edges) : undefined;
}

export interface RotationPlan {
  /** Time from the rotation until the new key signs (terminals learn it meanwhile). */
  readonly activateInMs: number;
  /** Time the old key stays trusted after the new one starts signing. */
  readonly retireAfterMs: number;
  /**
   * The key files leaked: every key of the ring is dropped and the new one signs at once (the
   * hours are ignored, a pending key is replaced; tickets signed before are refused from now on).
   */
  readonly compromised?: boolean;
}

/** The ring after a rotation at `nowMs`: the new key starts at now + activateIn, the current one ends retireAfter later. */
export function planRotation(keys: readonly HubKeyEntry[], nowMs: number, plan: RotationPlan, next: { publicKey: string; file: string }): HubKeyEntry[] {
  if (keys.some((k) => k.publicKey === next.publicKey)) throw new RotationError('the new key is already in the ring');
  if (plan.compromised) return [{ publicKey: next.publicKey, file: next.file, notBefore: nowMs, notAfter: FOREVER_MS }];
  for (const name of ['activateInMs', 'retireAfterMs'] as const) {
    const v = plan[name];
    if (!Number.isSafeInteger(v) || v < 0 || v > TICKET_HORIZON_MS) throw new RotationError(`${name}: expected a whole number of milliseconds from 0 to a year`);
  }
  const pending = keys.find((k) => k.notBefore > nowMs);
  if (pending) throw new RotationError(`key ${pending.publicKey.slice(0, 12)}… is already waiting to start at ${new Date(pending.notBefore).toISOString()}`);
  // The current key is the newest (a pending one is refused above), so it has no end yet.
  const current = signingKeyAt(keys, nowMs);
  const startsAt = nowMs + plan.activateInMs;
  const kept = keys.map((k) => (k.publicKey === current.publicKey ? { ...k, notAfter: startsAt + plan.retireAfterMs } : k));
  // The ring is what is announced: entries past the ticket horizon leave it (nothing they signed is honoured).
  const ring = announcedAt([...kept, { publicKey: next.publicKey, file: next.file, notBefore: startsAt, notAfter: FOREVER_MS }], nowMs);
  if (ring.length > MAX_ANNOUNCED_KEYS) {
    throw new RotationError(`at most ${MAX_ANNOUNCED_KEYS} hub keys can be announced; older keys leave the ring a year after they retire`);
  }
  return ring;
}

/** Where the ring's windows are kept (the registry; one transaction per change). */
export interface HubKeyStore {
  hubKeys(): HubKeyEntry[];
  replaceHubKeys(keys: readonly HubKeyEntry[]): void;
}

/** What the settlement service needs: the key to sign with now, and whether a hub-signed ticket is honoured. */
export interface HubKeys {
  signingKey(t: number): KeyPair;
  honoursTicket(publicKey: string, issuedAt: number, nowMs: number): boolean;
}

/** The ring with the secrets of its signing-capable keys loaded from the data dir's key files. */
export class HubKeyring implements HubKeys {
  readonly #dataDir: string;
  readonly #store: HubKeyStore;
  #keys: HubKeyEntry[];
  readonly #secrets = new Map<string, KeyPair>();
  /** The signing key from `from` until the next window edge: asked several times per request. */
  #signing: { from: number; until: number; pair: KeyPair } | undefined;

  private constructor(dataDir: string, store: HubKeyStore, nowMs: number) {
    this.#dataDir = dataDir;
    this.#store = store;
    this.#keys = store.hubKeys();
    if (this.#keys.length === 0) {
      // A data dir from before rotation existed: its one key becomes the ring's first entry.
      const first = loadOrCreateEd25519Key(dataDir, 'hub-signing');
      this.#keys = [{ publicKey: toHex(first.publicKey), file: FIRST_KEY_FILE, notBefore: 0, notAfter: FOREVER_MS }];
      store.replaceHubKeys(this.#keys);
    }
    // Retired keys never sign again: their files may be gone (deleted after a compromise).
    for (const k of this.#keys) if (k.notAfter >= nowMs) this.#load(k);
  }

  static open(dataDir: string, store: HubKeyStore, nowMs: number): HubKeyring {
    return new HubKeyring(dataDir, store, nowMs);
  }

  #load(k: HubKeyEntry): void {
    if (!KEY_FILE.test(k.file)) throw new RotationError(`hub key ring names an unexpected file ${JSON.stringify(k.file)}`);
    const path = join(this.#dataDir, k.file);
    if (!existsSync(path)) throw new RotationError(`hub key file ${k.file} is missing for key ${k.publicKey.slice(0, 12)}…`);
    const pair = loadEd25519Key(path);
    if (toHex(pair.publicKey) !== k.publicKey) throw new RotationError(`hub key file ${k.file} does not hold key ${k.publicKey.slice(0, 12)}…`);
    this.#secrets.set(k.publicKey, pair);
  }

  keys(): readonly HubKeyEntry[] {
    return this.#keys;
  }

  /** Keys whose secret is here: selection never lands on a retired key not loaded (a clock moved back). */
  #loaded(): HubKeyEntry[] {
    return this.#keys.filter((k) => this.#secrets.has(k.publicKey));
  }

  signingKey(t: number): KeyPair {
    const c = this.#signing;
    if (c && c.from <= t && t < c.until) return c.pair;
    const pair = this.#secrets.get(signingKeyAt(this.#loaded(), t).publicKey) as KeyPair;
    this.#signing = { from: t, until: nextKeyEdge(this.#keys, t) ?? Infinity, pair };
    return pair;
  }

  anchorKey(t: number): KeyPair {
    return this.#secrets.get(anchorKeyAt(this.#loaded(), t).publicKey) as KeyPair;
  }

  honoursTicket(publicKey: string, issuedAt: number, nowMs: number): boolean {
    return honoursTicket(this.#keys, publicKey, issuedAt, nowMs);
  }

  /** Generates the next key (file written and synced first), then records the new windows. */
  rotate(nowMs: number, plan: RotationPlan): HubKeyEntry {
    const pair = generateKeyPair();
    const publicKey = toHex(pair.publicKey);
    const file = `hub-signing-${publicKey.slice(0, 16)}.key`;
    const next = planRotation(this.#keys, nowMs, plan, { publicKey, file });
    // A crash between the two steps leaves an unused key file, never a ring entry without its secret.
    writeNewSecretKey(join(this.#dataDir, file), pair.secretKey);
    this.#store.replaceHubKeys(next);
    this.#keys = next;
    this.#signing = undefined;
    // Dropped keys (a leak) must not sign again in this process either.
    for (const key of [...this.#secrets.keys()]) if (!next.some((k) => k.publicKey === key)) this.#secrets.delete(key);
    this.#secrets.set(publicKey, pair);
    return next.at(-1) as HubKeyEntry;
  }
}
