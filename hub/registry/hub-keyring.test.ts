import { mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hubKeysTrustedAt, toHex } from '../../protocol/index.ts';
import { anchorKeyAt, announcedAt, FOREVER_MS, HubKeyring, planRotation, RotationError, signingKeyAt, type HubKeyEntry } from './hub-keyring.ts';
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

  it('signs with the newest active key, announces under the oldest valid one, trusts both only while both are valid', () => {
    const at = (t: number) => ({ signing: signingKeyAt(ring, t).publicKey, anchor: anchorKeyAt(ring, t).publicKey, trusted: hubKeysTrustedAt(ring, t), announced: announcedAt(ring, t).map((k) => k.publicKey) });
    const a = first.publicKey;
    const b = next.publicKey;
    // Before activation: the old key signs everything; the new one is announced but not trusted yet.
    expect(at(startsAt - 1)).toEqual({ signing: a, anchor: a, trusted: [a], announced: [a, b] });
    // Overlap: the new key signs results; the keys announcement stays under the old key.
    expect(at(startsAt)).toEqual({ signing: b, anchor: a, trusted: [a, b], announced: [a, b] });
    expect(at(retiresAt)).toEqual({ signing: b, anchor: a, trusted: [a, b], announced: [a, b] });
    // Retired: the old key is neither trusted nor announced.
    expect(at(retiresAt + 1)).toEqual({ signing: b, anchor: b, trusted: [b], announced: [b] });
  });

  it('refuses a second rotation while one is pending, a key already in the ring, and negative or fractional times', () => {
    expect(() => planRotation(ring, T0 + HOUR, { activateInMs: 0, retireAfterMs: 0 }, { publicKey: 'cc'.repeat(32), file: 'c' })).toThrow(/already waiting/);
    expect(() => planRotation([first], T0, { activateInMs: 0, retireAfterMs: 0 }, { publicKey: first.publicKey, file: 'x' })).toThrow(RotationError);
    expect(() => planRotation([first], T0, { activateInMs: -1, retireAfterMs: 0 }, next)).toThrow(/activateInMs/);
    expect(() => planRotation([first], T0, { activateInMs: 0, retireAfterMs: 1.5 }, next)).toThrow(/retireAfterMs/);
  });

  it('a compromised key (both times 0) stops being trusted right after the rotation', () => {
    const now = planRotation([first], T0, { activateInMs: 0, retireAfterMs: 0 }, next);
    expect(hubKeysTrustedAt(now, T0 + 1)).toEqual([next.publicKey]);
    expect(anchorKeyAt(now, T0 + 1).publicKey).toBe(next.publicKey);
  });

  it('a later rotation never extends a key that already retires earlier', () => {
    const after = planRotation(ring, retiresAt + 10, { activateInMs: 0, retireAfterMs: 365 * 24 * HOUR }, { publicKey: 'cc'.repeat(32), file: 'c' });
    expect(after.find((k) => k.publicKey === first.publicKey)?.notAfter).toBe(retiresAt);
    expect(after.find((k) => k.publicKey === next.publicKey)?.notAfter).toBe(retiresAt + 10 + 365 * 24 * HOUR);
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

  it('adopts the existing hub-signing.key, writes the next key 0600, and reopens to the same ring', () => {
    const ring = HubKeyring.open(dir, reg);
    const original = toHex(ring.signingKey(T0).publicKey);
    const versionBefore = reg.meta('keys_version');
    const added = ring.rotate(T0, { activateInMs: HOUR, retireAfterMs: HOUR });
    expect(reg.meta('keys_version')).toBe(versionBefore + 1);
    expect(statSync(join(dir, added.file)).mode & 0o777).toBe(0o600);
    expect(toHex(ring.signingKey(T0 + HOUR).publicKey)).toBe(added.publicKey);
    const again = HubKeyring.open(dir, reg);
    expect(again.keys()).toEqual(ring.keys());
    expect(toHex(again.signingKey(T0).publicKey)).toBe(original);
    expect(toHex(again.signingKey(T0 + HOUR).publicKey)).toBe(added.publicKey);
    expect(again.trustedKeys(T0 + 2 * HOUR + 1)).toEqual([added.publicKey]);
  });

  it('a ring entry whose key file is gone is a clear error, not a silently new key', () => {
    const ring = HubKeyring.open(dir, reg);
    const added = ring.rotate(T0, { activateInMs: HOUR, retireAfterMs: HOUR });
    unlinkSync(join(dir, added.file));
    expect(() => HubKeyring.open(dir, reg)).toThrow(/hub key file .* is missing/);
  });

  it('a refused rotation writes no key file and leaves the ring as it was', () => {
    const ring = HubKeyring.open(dir, reg);
    ring.rotate(T0, { activateInMs: HOUR, retireAfterMs: HOUR });
    const before = reg.hubKeys();
    expect(() => ring.rotate(T0 + 1, { activateInMs: HOUR, retireAfterMs: HOUR })).toThrow(RotationError);
    expect(reg.hubKeys()).toEqual(before);
    expect(HubKeyring.open(dir, reg).keys()).toEqual(before);
  });
});
