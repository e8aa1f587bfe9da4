import { describe, expect, it } from 'vitest';
import { PIN_LOCKOUT_MS, PIN_MAX_FAILURES, pinLockedUntil, recordPinAttempt, type PinAttempts } from './pin-attempts.ts';

describe('staff PIN attempts', () => {
  it(`locks an operator id after ${PIN_MAX_FAILURES} wrong PINs in a row, for ${PIN_LOCKOUT_MS} ms of running time; a right PIN resets the run`, () => {
    let a: PinAttempts = {};
    for (let i = 0; i < PIN_MAX_FAILURES - 1; i++) a = recordPinAttempt(a, 'alice', false, 1000);
    expect(pinLockedUntil(a, 'alice', 1000)).toBeUndefined();
    a = recordPinAttempt(a, 'alice', true, 1000); // the run is broken
    for (let i = 0; i < PIN_MAX_FAILURES - 1; i++) a = recordPinAttempt(a, 'alice', false, 2000);
    expect(pinLockedUntil(a, 'alice', 2000)).toBeUndefined();
    a = recordPinAttempt(a, 'alice', false, 2000);
    expect(pinLockedUntil(a, 'alice', 2000)).toBe(2000 + PIN_LOCKOUT_MS);
    expect(pinLockedUntil(a, 'bob', 2000)).toBeUndefined();
    expect(pinLockedUntil(a, 'alice', 2000 + PIN_LOCKOUT_MS)).toBeUndefined();
  });
});
