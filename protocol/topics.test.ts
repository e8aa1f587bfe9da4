import { describe, expect, it } from 'vitest';
import { parseTerminalTopic, topics } from './topics.ts';

describe('topics', () => {
  it('builds and parses per-terminal topics', () => {
    expect(topics.request('gate-1')).toBe('tapsettle/v1/terminal/gate-1/request');
    expect(parseTerminalTopic(topics.reply('gate-1'))).toEqual({ terminalId: 'gate-1', kind: 'reply' });
    expect(parseTerminalTopic('tapsettle/v1/terminal/gate-1/other')).toBeNull();
    expect(parseTerminalTopic('tapsettle/v1/terminal/+/request')).toBeNull();
    expect(parseTerminalTopic('x/v1/terminal/a/request')).toBeNull();
    for (const other of ['tapsettle/v1/terminal/a/request/x', 'tapsettle/v1/terminal//request', 'tapsettle/v1/terminal/a', 'tapsettle/v1/terminal/a/', 'tapsettle/v1/terminals/a/request', 'tapsettle/v1/hub/presence']) {
      expect([other, parseTerminalTopic(other)]).toEqual([other, null]);
    }
    for (const kind of ['request', 'receipt', 'reply', 'presence'] as const) expect(parseTerminalTopic(topics[kind]('pos.cafe_2'))).toEqual({ terminalId: 'pos.cafe_2', kind });
  });
  it('refuses ids that would escape their topic subtree', () => {
    for (const bad of ['a/b', '+', '#', '', 'x'.repeat(65)]) expect(() => topics.request(bad)).toThrow(TypeError);
  });
});
