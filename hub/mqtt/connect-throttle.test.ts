import { describe, expect, it } from 'vitest';
import { ConnectThrottle, sourceKey } from './connect-throttle.ts';

const t0 = 1_800_000_000_000;

describe('ConnectThrottle', () => {
  it('lets an address run up its burst of refusals, says so once when it is spent, then gives one back per refill period', () => {
    const throttle = new ConnectThrottle({ burst: 3, refillPerS: 2 });
    const spent = [1, 2, 3].map(() => {
      expect(throttle.allows('10.0.0.7', t0)).toBe(true);
      return throttle.refused('10.0.0.7', t0);
    });
    expect(spent).toEqual([false, false, true]);
    expect(throttle.allows('10.0.0.7', t0 + 499)).toBe(false);
    expect(throttle.allows('10.0.0.8', t0)).toBe(true); // another source is not affected
    expect(throttle.allows('10.0.0.7', t0 + 500)).toBe(true);
    // A flood that keeps at it is one episode: not told again at each token it gets back.
    expect(throttle.refused('10.0.0.7', t0 + 500)).toBe(false);
    expect(throttle.allows('10.0.0.7', t0 + 600)).toBe(false);
    // Once it has refilled whole, running out again is a new episode.
    expect([1, 2, 3].map(() => throttle.refused('10.0.0.7', t0 + 60_000))).toEqual([false, false, true]);
  });

  it('refills no further than the burst, however long the source was quiet', () => {
    const throttle = new ConnectThrottle({ burst: 2, refillPerS: 1 });
    throttle.refused('10.0.0.7', t0);
    const later = t0 + 3_600_000;
    expect(throttle.refused('10.0.0.7', later)).toBe(false);
    expect(throttle.refused('10.0.0.7', later)).toBe(true);
    expect(throttle.allows('10.0.0.7', later)).toBe(false);
  });

  it('counts an IPv6 source by its /64 and an IPv4-mapped one as IPv4', () => {
    const throttle = new ConnectThrottle({ burst: 1 });
    expect(throttle.refused('2001:db8:1:2::1', t0)).toBe(true);
    expect(throttle.allows('2001:db8:1:2:ffff::9', t0)).toBe(false);
    expect(throttle.allows('2001:db8:1:3::1', t0)).toBe(true);
    expect(throttle.refused('::ffff:192.0.2.1', t0)).toBe(true);
    expect(throttle.allows('192.0.2.1', t0)).toBe(false);
    expect(sourceKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(sourceKey(undefined)).toBe('unknown');
    expect(sourceKey('not an address')).toBe('unknown');
  });

  it('remembers a bounded number of sources: the refilled go first, then the oldest', () => {
    const throttle = new ConnectThrottle({ burst: 1, refillPerS: 1, maxSources: 2 });
    throttle.refused('10.0.0.1', t0);
    throttle.refused('10.0.0.2', t0 + 1000); // 10.0.0.1 has refilled by the time a third comes
    throttle.refused('10.0.0.3', t0 + 1000);
    expect(throttle.sources).toBe(2);
    expect(throttle.allows('10.0.0.2', t0 + 1000)).toBe(false);
    expect(throttle.allows('10.0.0.3', t0 + 1000)).toBe(false);
    throttle.refused('10.0.0.4', t0 + 1000); // none refilled: the oldest (10.0.0.2) is forgotten
    expect(throttle.sources).toBe(2);
    expect(throttle.allows('10.0.0.2', t0 + 1000)).toBe(true);
    expect(throttle.allows('10.0.0.3', t0 + 1000)).toBe(false);
    expect(throttle.allows('10.0.0.4', t0 + 1000)).toBe(false);
  });
});
