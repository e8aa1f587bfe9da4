import { mkdtempSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hubKeysTrustedAt, toHex } from '../../protocol/index.ts';
import { anchorKeyAt, announcedAt, FOREVER_MS, HubKeyring, honoursTicket, MAX_ANNOUNCED_KEYS, nextKeyEdge, planRotation, RotationError, signingKeyAt, TICKET_HORIZON_MS, type HubKeyEntry } from './hub-keyring.ts';
import { loadOrCreateEd25519Key } from './keys.ts';
import { Registry } from './registry.ts';

const HOUR = 3600_000;
const T0 = 1_800_000_000_000;
const first: HubKeyEntry = { publicKey: 'aa'.repeat(32), file: 'hub-signing.key', notBefore: 0, notAfter: FOREVER_MS };
const next = { publicKey: 'bb'.repeat(32), file: 'hub-signing-bb.key' };

describe('hub key ring (pure)', () => {
  const ring = planRotation([first], T0, { activateInMs: 24 * HOUR, retireAfterMs: 7 * 24 * HOUR }, next);
  const startsAt = T0 + 24 * HOUR;
  const retiresAt = startsAt + 7 * 24 * HOUR;

  it('plans the next key ahead and retires the current one after the grace period', () => {
    expect(ring).toEqual([
      { ...first, notAfter: retiresAt },
      { ...next, notBefore: startsAt, notAfter: FOREVER_MS },
    ]);
  });

  it('signs with the newest active key, announces under the oldest active one, trusts both only while both are active', () => {
    const at = (t: number) => ({ signing: signingKeyAt(ring, t).publicKey, anchor: anchorKeyAt(ring, t).publicKey, trusted: hubKeysTrustedAt(ring, t), announced: announcedAt(ring, t).map((k) => k.publicKey) });
    const a = first.publicKey;
    const b = next.publicKey;
    // Before activation: the old key signs everything; the new one is announced but not trusted yet.
    expect(at(startsAt - 1)).toEqual({ signing: a, anchor: a, trusted: [a], announced: [a, b] });
    // Overlap: the new key signs results; the keys announcement stays under the old key.
    expect(at(startsAt)).toEqual({ signing: b, anchor: a, trusted: [a, b], announced: [a, b] });
    expect(at(retiresAt)).toEqual({ signing: b, anchor: a, trusted: [a, b], announced: [a, b] });
    // Retired: no longer trusted for new things, still announced for the tickets it signed.
    expect(at(retiresAt + 1)).toEqual({ signing: b, anchor: b, trusted: [b], announced: [a, b] });
    expect(at(retiresAt + TICKET_HORIZON_MS + 1).announced).toEqual([b]);
    // A ticket counts when its key had not retired at its issue time, for a ticket lifetime after.
    expect(honoursTicket(ring, a, startsAt - 1, retiresAt + TICKET_HORIZON_MS)).toBe(true);
    expect(honoursTicket(ring, a, startsAt - 1, retiresAt + TICKET_HORIZON_MS + 1)).toBe(false);
    expect(honoursTicket(ring, a, retiresAt + 1, retiresAt + 2)).toBe(false);
    expect(honoursTicket(ring, b, startsAt - 1, startsAt)).toBe(true); // a late answer may carry an earlier issue time
    expect(honoursTicket(ring, 'ee'.repeat(32), T0, T0)).toBe(false);
    // The hub re-announces at each edge.
    expect(nextKeyEdge(ring, T0)).toBe(startsAt);
    expect(nextKeyEdge(ring, startsAt)).toBe(retiresAt + 1);
    expect(nextKeyEdge(ring, retiresAt + 1)).toBeUndefined();
  });

  it('refuses a second rotation while one is pending, a key already in the ring, and times that are negative, fractional or over a year', () => {
    expect(() => planRotation(ring, T0 + HOUR, { activateInMs: 0, retireAfterMs: 0 }, { publicKey: 'cc'.repeat(32), file: 'c' })).toThrow(/already waiting/);
    expect(() => planRotation([first], T0, { activateInMs: 0, retireAfterMs: 0 }, { publicKey: first.publicKey, file: 'x' })).toThrow(RotationError);
    expect(() => planRotation([first], T0, { activateInMs: -1, retireAfterMs: 0 }, next)).toThrow(/activateInMs/);
    expect(() => planRotation([first], T0, { activateInMs: 0, retireAfterMs: 1.5 }, next)).toThrow(/retireAfterMs/);
    expect(() => planRotation([first], T0, { activateInMs: TICKET_HORIZON_MS + 1, retireAfterMs: 0 }, next)).toThrow(/activateInMs/);
  });

  it('a leak drops every key of the ring, a pending one too: the new key alone signs at once, old tickets are refused', () => {
    const dropped = planRotation(ring, T0 + HOUR, { activateInMs: 24 * HOUR, retireAfterMs: 24 * HOUR, compromised: true }, { publicKey: 'cc'.repeat(32), file: 'c' });
    expect(dropped).toEqual([{ publicKey: 'cc'.repeat(32), file: 'c', notBefore: T0 + HOUR, notAfter: FOREVER_MS }]);
    expect(honoursTicket(dropped, first.publicKey, T0, T0 + HOUR)).toBe(false);
    expect(announcedAt(dropped, T0 + HOUR).map((k) => k.publicKey)).toEqual(['cc'.repeat(32)]);
  });

  it('refuses a rotation that would announce more than the announcement holds', () => {
    let keys: HubKeyEntry[] = [first];
    let t = T0;
    for (let i = 1; i < MAX_ANNOUNCED_KEYS; i++) {
      keys = planRotation(keys, t, { activateInMs: 0, retireAfterMs: 0 }, { publicKey: i.toString(16).padStart(64, '0'), file: `k${i}` });
      t += HOUR;
    }
    expect(announcedAt(keys, t)).toHaveLength(MAX_ANNOUNCED_KEYS);
    expect(() => planRotation(keys, t, { activateInMs: 0, retireAfterMs: 0 }, { publicKey: 'ff'.repeat(32), file: 'x' })).toThrow(/at most 8/);
    // A year later the oldest have left the ring and rotation works again.
    const later = planRotation(keys, t + TICKET_HORIZON_MS, { activateInMs: 0, retireAfterMs: 0 }, { publicKey: 'ff'.repeat(32), file: 'x' });
    expect(later.length).toBeLessThan(keys.length);
  });

});

describe('HubKeyring on a data dir', () => {
  let dir: string;
  let reg: Registry;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-keyring-'));
    reg = Registry.open(join(dir, 'registry.sqlite'));
  });
  afterEach(() => {
    reg.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('adopts the hub-signing.key of a data dir from before rotation, writes the next key 0600, and reopens to the same ring', () => {
    const original = toHex(loadOrCreateEd25519Key(dir, 'hub-signing').publicKey);
    const ring = HubKeyring.open(dir, reg, T0);
    expect(ring.keys()).toEqual([{ publicKey: original, file: 'hub-signing.key', notBefore: 0, notAfter: FOREVER_MS }]);
    const versionBefore = reg.meta('keys_version');
    const added = ring.rotate(T0, { activateInMs: HOUR, retireAfterMs: HOUR });
    expect(reg.meta('keys_version')).toBe(versionBefore + 1);
    expect(statSync(join(dir, added.file)).mode & 0o777).toBe(0o600);
    // Asked in any order, across the edge (the keyring caches the key between edges).
    expect(toHex(ring.signingKey(T0 + HOUR - 1).publicKey)).toBe(original);
    expect(toHex(ring.signingKey(T0 + HOUR).publicKey)).toBe(added.publicKey);
    expect(toHex(ring.signingKey(T0).publicKey)).toBe(original);
    expect(toHex(ring.signingKey(T0 + 5 * HOUR).publicKey)).toBe(added.publicKey);
    const again = HubKeyring.open(dir, reg, T0);
    expect(again.keys()).toEqual(ring.keys());
    expect(toHex(again.signingKey(T0).publicKey)).toBe(original);
    expect(toHex(again.signingKey(T0 + HOUR).publicKey)).toBe(added.publicKey);
    expect(again.honoursTicket(original, T0 + 2 * HOUR + 1, T0 + 2 * HOUR + 1)).toBe(false);
    expect(again.honoursTicket(original, T0, T0 + 2 * HOUR + 1)).toBe(true);
  });

  it('a missing file of a key that may still sign is a clear error, not a silently new key; the file of a retired key may go', () => {
    const ring = HubKeyring.open(dir, reg, T0);
    const added = ring.rotate(T0, { activateInMs: HOUR, retireAfterMs: HOUR });
    unlinkSync(join(dir, added.file));
    expect(() => HubKeyring.open(dir, reg, T0)).toThrow(/hub key file .* is missing/);
    expect(readdirSync(dir).filter((f) => f.startsWith('hub-signing'))).toEqual(['hub-signing.key']);
    // The other way round: the first key retired, its file deleted (as after a leak).
    const other = mkdtempSync(join(tmpdir(), 'tapsettle-keyring-'));
    const reg2 = Registry.open(join(other, 'registry.sqlite'));
    try {
      const r2 = HubKeyring.open(other, reg2, T0);
      const b = r2.rotate(T0, { activateInMs: HOUR, retireAfterMs: HOUR });
      unlinkSync(join(other, 'hub-signing.key'));
      expect(toHex(HubKeyring.open(other, reg2, T0 + 3 * HOUR).signingKey(T0 + 3 * HOUR).publicKey)).toBe(b.publicKey);
    } finally {
      reg2.close();
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('a refused rotation writes no key file and leaves the ring as it was', () => {
    const ring = HubKeyring.open(dir, reg, T0);
    ring.rotate(T0, { activateInMs: HOUR, retireAfterMs: HOUR });
    const before = reg.hubKeys();
    const files = readdirSync(dir).filter((f) => f.startsWith('hub-signing'));
    expect(() => ring.rotate(T0 + 1, { activateInMs: HOUR, retireAfterMs: HOUR })).toThrow(RotationError);
    expect(reg.hubKeys()).toEqual(before);
    expect(readdirSync(dir).filter((f) => f.startsWith('hub-signing'))).toEqual(files);
    expect(HubKeyring.open(dir, reg, T0).keys()).toEqual(before);
  });
});
