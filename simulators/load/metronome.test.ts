import { afterAll, describe, expect, it } from 'vitest';
import { Metronome } from './metronome.ts';

describe('Metronome', () => {
  const m = new Metronome();
  afterAll(async () => {
    await m.close();
  });

  const wake = (atMs: number) => new Promise<number>((resolve) => m.at(atMs, () => resolve(performance.now())));

  it('never wakes early, and wakes in order for a sequence of times', async () => {
    const start = performance.now() + 5;
    for (let i = 0; i < 20; i++) {
      const due = start + i * 2.5;
      const woke = await wake(due);
      expect(woke).toBeGreaterThanOrEqual(due);
    }
  });

  it('a newer wake-up replaces the pending one at once, even an earlier one', async () => {
    let first = 0;
    const firstDue = performance.now() + 400;
    m.at(firstDue, () => first++);
    const due = performance.now() + 5;
    const woke = await wake(due);
    expect(woke).toBeGreaterThanOrEqual(due);
    expect(woke).toBeLessThan(firstDue); // not held up by the one it replaced
    await new Promise((r) => setTimeout(r, 450));
    expect(first).toBe(0);
  });
});
