import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { topics } from '../../protocol/topics.ts';
import { topicMatches } from './hub-transport.ts';

/** The rule as [MQTT-4.7] states it, level by level on split strings: the oracle. */
function byLevels(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

describe('topicMatches', () => {
  it('matches the MQTT examples', () => {
    const cases: [string, string, boolean][] = [
      ['sport/tennis/player1/#', 'sport/tennis/player1', true],
      ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
      ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
      ['sport/#', 'sport', true],
      ['#', 'sport/tennis', true],
      ['sport/tennis/+', 'sport/tennis/player1', true],
      ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
      ['sport/+', 'sport', false],
      ['sport/+', 'sport/', true],
      ['+/+', '/finance', true],
      ['/+', '/finance', true],
      ['+', '/finance', false],
      [topics.allRequests, topics.request('gate-1'), true],
      [topics.allRequests, topics.receipt('gate-1'), false],
      [topics.allRequests, `${topics.request('gate-1')}/x`, false],
      [topics.allAnnouncements, topics.catalog('shop.cafe'), true],
      [topics.allAnnouncements, topics.hubPresence, false],
      ['a/b', 'a/bc', false],
      ['a/bc', 'a/b', false],
    ];
    for (const [filter, topic, want] of cases) expect([filter, topic, topicMatches(filter, topic)]).toEqual([filter, topic, want]);
  });

  it('agrees with the level-by-level rule on any filter and topic', () => {
    const level = fc.constantFrom('', 'a', 'b', 'ab', '+', '#');
    const path = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));
    const topicLevel = fc.constantFrom('', 'a', 'b', 'ab', 'ba');
    const topic = fc.array(topicLevel, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));
    fc.assert(fc.property(path, topic, (f, t) => topicMatches(f, t) === byLevels(f, t)), { numRuns: 5000 });
  });
});
