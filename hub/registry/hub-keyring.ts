/**
 * Hub signing-key rotation (issue 4, retained announcements). The hub keeps a small ring of
 * signing keys, each with a validity window. A new key is announced ahead of its `notBefore`, so
 * terminals that are online learn it before the first result it signs; the old key stays trusted
 * for a grace period after that, so results and tickets it signed keep verifying.
 *
 * Which key does what, at time t:
 * - signing key: the newest key already active — signs results, tickets, statements, errors;
 * - anchor key: the oldest key still valid — signs the keys announcement, because it is the key
 *   every terminal provisioned before the rotation already trusts;
 * - trusted keys: every key whose window contains t (tickets the hub is shown are checked against
 *   these).
 * The functions here are pure; `HubKeyring` adds the secret key files.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, hubKeysTrustedAt, keyActiveAt, toHex, type HubKeyWindow, type KeyPair } from '../../protocol/index.ts';
import { loadOrCreateEd25519Key, writeNewSecretKey } from './keys.ts';

export type { HubKeyWindow };

/** Where the key's secret lives, relative to the data dir. */
export interface HubKeyEntry extends HubKeyWindow {
  readonly file: string;
}

/** 9999-12-31: the first key, and the newest after a rotation, never expire on their own. */
export const FOREVER_MS = 253_402_300_799_000;

export class RotationError extends Error {
  readonly code = 'ROTATION_REFUSED';
  constructor(why: string) {
    super(why);
    this.name = 'RotationError';
  }
}

/** Keys worth announcing at t: valid now or later. */
export function announcedAt<K extends HubKeyWindow>(keys: readonly K[], t: number): K[] {
  return keys.filter((k) => t <= k.notAfter).sort((a, b) => a.notBefore - b.notBefore);
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

export interface RotationPlan {
  /** Time from the rotation until the new key signs (terminals learn it meanwhile). */
  readonly activateInMs: number;
  /** Time the old key stays trusted after the new one starts signing. */
  readonly retireAfterMs: number;
}

/** The ring after a rotation at `nowMs`: the new key starts at now + activateIn, the current one ends retireAfter later. */
export function planRotation(keys: readonly HubKeyEntry[], nowMs: number, plan: RotationPlan, next: { publicKey: string; file: string }): HubKeyEntry[] {
  for (const [name, v] of Object.entries(plan)) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RotationError(`${name}: expected a whole number of milliseconds ≥ 0`);
  }
  const pending = keys.find((k) => k.notBefore > nowMs);
  if (pending) throw new RotationError(`key ${pending.publicKey.slice(0, 12)}… is already waiting to start at ${new Date(pending.notBefore).toISOString()}`);
  if (keys.some((k) => k.publicKey === next.publicKey)) throw new RotationError('the new key is already in the ring');
  const current = signingKeyAt(keys, nowMs);
  const startsAt = nowMs + plan.activateInMs;
  const retiresAt = Math.min(current.notAfter, startsAt + plan.retireAfterMs);
  return [
    ...keys.map((k) => (k.publicKey === current.publicKey ? { ...k, notAfter: retiresAt } : k)),
    { publicKey: next.publicKey, file: next.file, notBefore: startsAt, notAfter: FOREVER_MS },
  ];
}

/** Where the ring's windows are kept (the registry; one transaction per change). */
export interface HubKeyStore {
  hubKeys(): HubKeyEntry[];
  replaceHubKeys(keys: readonly HubKeyEntry[]): void;
}

const FIRST_KEY_FILE = 'hub-signing.key';

/** The ring with its secrets loaded from the data dir's key files. */
export class HubKeyring {
  readonly #dataDir: string;
  readonly #store: HubKeyStore;
  #keys: HubKeyEntry[];
  readonly #secrets = new Map<string, KeyPair>();

  private constructor(dataDir: string, store: HubKeyStore) {
    this.#dataDir = dataDir;
    this.#store = store;
    this.#keys = store.hubKeys();
    if (this.#keys.length === 0) {
      // A data dir from before rotation existed: its one key becomes the ring's first entry.
      const first = loadOrCreateEd25519Key(dataDir, 'hub-signing');
      this.#keys = [{ publicKey: toHex(first.publicKey), file: FIRST_KEY_FILE, notBefore: 0, notAfter: FOREVER_MS }];
      store.replaceHubKeys(this.#keys);
    }
    for (const k of this.#keys) this.#load(k);
  }

  static open(dataDir: string, store: HubKeyStore): HubKeyring {
    return new HubKeyring(dataDir, store);
  }

  #load(k: HubKeyEntry): KeyPair {
    const path = join(this.#dataDir, k.file);
    if (!existsSync(path)) throw new RotationError(`hub key file ${k.file} is missing for key ${k.publicKey.slice(0, 12)}…`);
    const pair = loadOrCreateEd25519Key(this.#dataDir, k.file.replace(/\.key$/, ''));
    if (toHex(pair.publicKey) !== k.publicKey) throw new RotationError(`hub key file ${k.file} does not hold key ${k.publicKey.slice(0, 12)}…`);
    this.#secrets.set(k.publicKey, pair);
    return pair;
  }

  keys(): readonly HubKeyEntry[] {
    return this.#keys;
  }

  signingKey(t: number): KeyPair {
    return this.#secrets.get(signingKeyAt(this.#keys, t).publicKey) as KeyPair;
  }

  anchorKey(t: number): KeyPair {
    return this.#secrets.get(anchorKeyAt(this.#keys, t).publicKey) as KeyPair;
  }

  trustedKeys(t: number): string[] {
    return hubKeysTrustedAt(this.#keys, t);
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
    this.#secrets.set(publicKey, pair);
    return next.at(-1) as HubKeyEntry;
  }
}
