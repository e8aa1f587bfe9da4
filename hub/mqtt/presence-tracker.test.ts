import { describe, expect, it } from 'vitest';
import { PresenceTracker } from './presence-tracker.ts';

const msg = (terminalId: string, state: 'online' | 'offline', seq: number) => Buffer.from(JSON.stringify({ v: 1, terminalId, state, seq, time: 1 }));

describe('PresenceTracker', () => {
  it('follows online → offline within one session', () => {
    const p = new PresenceTracker();
    expect(p.apply('g1', msg('g1', 'online', 5), 1000)).toBe('applied');
    expect(p.get('g1')).toMatchObject({ state: 'online', seq: 5, sinceMs: 1000 });
    expect(p.apply('g1', msg('g1', 'offline', 5), 2000)).toBe('applied');
    expect(p.get('g1')).toMatchObject({ state: 'offline', seq: 5, sinceMs: 2000 });
  });

  it('ignores the late will of an older session (Sparkplug B seq)', () => {
    const p = new PresenceTracker();
    p.apply('g1', msg('g1', 'online', 5), 1000);
    p.apply('g1', msg('g1', 'online', 6), 1100);
    expect(p.apply('g1', msg('g1', 'offline', 5), 1200)).toBe('stale');
    expect(p.get('g1')).toMatchObject({ state: 'online', seq: 6 });
  });

  it('does not let a replayed birth revive a session that already died', () => {
    const p = new PresenceTracker();
    p.apply('g1', msg('g1', 'online', 7), 1000);
    p.apply('g1', msg('g1', 'offline', 7), 1100);
    expect(p.apply('g1', msg('g1', 'online', 7), 1200)).toBe('stale');
    expect(p.get('g1')?.state).toBe('offline');
  });

  it('rejects payloads that are not Presence or name another terminal', () => {
    const p = new PresenceTracker();
    expect(p.apply('g1', Buffer.from('nope'), 1)).toBe('invalid');
    expect(p.apply('g1', msg('g2', 'online', 1), 1)).toBe('invalid');
    expect(p.apply('g1', Buffer.from(JSON.stringify({ v: 1, terminalId: 'g1', state: 'online', seq: -1, time: 1 })), 1)).toBe('invalid');
    expect(p.snapshot()).toEqual([]);
  });

  it('touch updates lastSeen only', () => {
    const p = new PresenceTracker();
    p.apply('g1', msg('g1', 'online', 1), 1000);
    p.touch('g1', 5000);
    expect(p.get('g1')).toMatchObject({ lastSeenMs: 5000, sinceMs: 1000, state: 'online' });
  });
});
