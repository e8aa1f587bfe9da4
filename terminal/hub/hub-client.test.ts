import { describe, expect, it } from 'vitest';
import { MAX_RETRY_INTERVAL_MS, MAX_SETUP_RETRY_MS, retryIntervalMs, setupRetryMs } from './hub-client.ts';

describe('re-sending an unanswered request', () => {
  it('waits retryMs for the first sends, then doubles the wait up to five minutes', () => {
    expect([0, 1, 2, 3].map((n) => retryIntervalMs(n, 1000))).toEqual([1000, 1000, 1000, 1000]);
    expect([4, 5, 6].map((n) => retryIntervalMs(n, 1000))).toEqual([2000, 4000, 8000]);
    expect(retryIntervalMs(20, 1000)).toBe(MAX_RETRY_INTERVAL_MS);
    expect(retryIntervalMs(10_000, 1000)).toBe(MAX_RETRY_INTERVAL_MS); // no overflow on a very old row
  });

  it('never waits less than retryMs, even when that is longer than the cap', () => {
    expect(retryIntervalMs(0, 10 * 60_000)).toBe(10 * 60_000);
    expect(retryIntervalMs(50, 10 * 60_000)).toBe(10 * 60_000);
  });
});

describe('setting a connection up again after a failed subscribe', () => {
  it('waits the reconnect period, then doubles the wait up to a minute', () => {
    expect([1, 2, 3, 4].map((n) => setupRetryMs(n, 1000))).toEqual([1000, 2000, 4000, 8000]);
    expect(setupRetryMs(7, 1000)).toBe(MAX_SETUP_RETRY_MS);
    expect(setupRetryMs(10_000, 1000)).toBe(MAX_SETUP_RETRY_MS); // no overflow after days of refusals
  });

  it('never waits less than the reconnect period, even when that is longer than the cap', () => {
    expect(setupRetryMs(1, 2 * MAX_SETUP_RETRY_MS)).toBe(2 * MAX_SETUP_RETRY_MS);
    expect(setupRetryMs(50, 2 * MAX_SETUP_RETRY_MS)).toBe(2 * MAX_SETUP_RETRY_MS);
  });
});
