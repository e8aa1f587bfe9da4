import { describe, expect, it } from 'vitest';
import { MAX_TERMINAL_PAYLOAD_BYTES, topics } from '../../protocol/index.ts';
import { MAX_PRESENCE_BYTES, mayPublish, maySubscribe, presencePayloadOk } from './acl.ts';

describe('terminal ACL', () => {
  it('lets a terminal publish its own request, receipt and (retained) presence', () => {
    expect(mayPublish('pos-1', topics.request('pos-1'), 100, false).ok).toBe(true);
    expect(mayPublish('pos-1', topics.receipt('pos-1'), 100, false).ok).toBe(true);
    expect(mayPublish('pos-1', topics.presence('pos-1'), 100, true).ok).toBe(true);
  });

  it.each([
    ['another terminal\'s request', topics.request('pos-2'), false],
    ['its own reply topic', topics.reply('pos-1'), false],
    ['a hub announcement', topics.announce('keys'), true],
    ['a retained request', topics.request('pos-1'), true],
    ['a non-retained presence', topics.presence('pos-1'), false],
    ['an unrelated topic', 'other/topic', false],
  ] as const)('refuses publishing on %s', (_name, topic, retain) => {
    expect(mayPublish('pos-1', topic, 10, retain).ok).toBe(false);
  });

  it('refuses payloads over the limit', () => {
    expect(mayPublish('pos-1', topics.request('pos-1'), MAX_TERMINAL_PAYLOAD_BYTES, false).ok).toBe(true);
    expect(mayPublish('pos-1', topics.request('pos-1'), MAX_TERMINAL_PAYLOAD_BYTES + 1, false)).toMatchObject({ ok: false });
  });

  it("lets a terminal subscribe to its own reply, the announcements and the hub's presence only", () => {
    expect(maySubscribe('pos-1', topics.reply('pos-1')).ok).toBe(true);
    expect(maySubscribe('pos-1', topics.hubPresence).ok).toBe(true);
    expect(maySubscribe('pos-1', topics.allAnnouncements).ok).toBe(true);
    expect(maySubscribe('pos-1', topics.announce('blocklist')).ok).toBe(true);
    expect(maySubscribe('pos-1', topics.catalog('canteen')).ok).toBe(true);
    for (const filter of [topics.reply('pos-2'), 'tapsettle/v1/terminal/+/reply', '#', 'tapsettle/#', topics.request('pos-1'), 'tapsettle/v1/hub/announce/+/x', 'tapsettle/v1/hub/+', '$SYS/#']) {
      expect(maySubscribe('pos-1', filter).ok, filter).toBe(false);
    }
  });

  it("keeps a presence only when it is a small, well-formed Presence of the publishing terminal", () => {
    const presence = (o: Record<string, unknown> = {}) => Buffer.from(JSON.stringify({ v: 1, terminalId: 'pos-1', state: 'offline', seq: 7, time: 1_800_000_000_000, ...o }));
    expect(presencePayloadOk('pos-1', presence())).toEqual({ ok: true });
    expect(presencePayloadOk('pos-2', presence()).ok).toBe(false);
    expect(presencePayloadOk('pos-1', presence({ state: 'away' })).ok).toBe(false);
    expect(presencePayloadOk('pos-1', Buffer.from('not json')).ok).toBe(false);
    expect(presencePayloadOk('pos-1', Buffer.alloc(MAX_PRESENCE_BYTES + 1, 0x20)).ok).toBe(false);
  });
});
