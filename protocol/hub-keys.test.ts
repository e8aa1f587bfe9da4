import { describe, expect, it } from 'vitest';
import { hubKeysTrustedAt } from './hub-keys.ts';

describe('hub key windows', () => {
  const ring = [
    { publicKey: 'a', notBefore: 0, notAfter: 1000 },
    { publicKey: 'b', notBefore: 900, notAfter: 5000 },
  ];
  it('trusts a key inside its window only, both ends included', () => {
    expect(hubKeysTrustedAt(ring, 899)).toEqual(['a']);
    expect(hubKeysTrustedAt(ring, 900)).toEqual(['a', 'b']);
    expect(hubKeysTrustedAt(ring, 1000)).toEqual(['a', 'b']);
    expect(hubKeysTrustedAt(ring, 1001)).toEqual(['b']);
    expect(hubKeysTrustedAt(ring, 5001)).toEqual([]);
  });
  it('widens every window by the slack on both sides (a terminal clock off by that much)', () => {
    expect(hubKeysTrustedAt(ring, 850, 50)).toEqual(['a', 'b']);
    expect(hubKeysTrustedAt(ring, 1050, 50)).toEqual(['a', 'b']);
    expect(hubKeysTrustedAt(ring, 1051, 50)).toEqual(['b']);
  });
});
