/**
 * Staff PINs at a POS are 4 digits: 10,000 guesses. After PIN_MAX_FAILURES wrong ones in a row an
 * operator id is locked for PIN_LOCKOUT_MS of the terminal's running time (the store's uptime
 * clock, as the offline limits: setting the wall clock ahead does not end it, nor does a restart:
 * the state is kept in the store). A right PIN ends the run of failures.
 */
export const PIN_MAX_FAILURES = 5;
export const PIN_LOCKOUT_MS = 5 * 60_000;

export type PinAttempts = Readonly<Record<string, { readonly failures: number; readonly lockedUntilMs?: number }>>;

/** The running time until which `operatorId` is locked, or undefined. */
export function pinLockedUntil(attempts: PinAttempts, operatorId: string, uptimeMs: number): number | undefined {
  const until = attempts[operatorId]?.lockedUntilMs;
  return until !== undefined && uptimeMs < until ? until : undefined;
}

export function recordPinAttempt(attempts: PinAttempts, operatorId: string, ok: boolean, uptimeMs: number): PinAttempts {
  const rest = Object.fromEntries(Object.entries(attempts).filter(([id]) => id !== operatorId));
  if (ok) return rest;
  const failures = (attempts[operatorId]?.failures ?? 0) + 1;
  if (failures < PIN_MAX_FAILURES) return { ...rest, [operatorId]: { failures } };
  return { ...rest, [operatorId]: { failures: 0, lockedUntilMs: uptimeMs + PIN_LOCKOUT_MS } };
}
