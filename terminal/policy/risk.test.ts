import { describe, expect, it } from 'vitest';
import { Fixture, T0 } from '../machines/fixtures.ts';
import { checkLicense, decideGateLocal, decideOffline, DEFAULT_RISK_LIMITS, OUTBOX_RESERVE, trustedStatement, type UsageView } from './risk.ts';

function usage(local: number, period = 0, sinceStatement = local): UsageView {
  return { walletLocalMinor: (_w, since) => (since === undefined ? local : sinceStatement), terminalPeriodMinor: () => period, ticketUsed: () => false };
}

describe('risk policy', () => {
  const f = new Fixture();
  const w = f.wallet({ offlineLimitMinor: 1000 });
  const trust = { issuerKeys: f.ctx().issuerKeys, blocklist: new Set<string>() };

  it('license: trusted issuer, validity, blocklist', () => {
    expect(checkLicense(w.license, trust, T0).ok).toBe(true);
    expect(checkLicense(w.license, { ...trust, blocklist: new Set([w.hex]) }, T0)).toEqual({ ok: false, code: 'BLOCKLISTED' });
    expect(checkLicense(w.license, { ...trust, issuerKeys: [] }, T0)).toEqual({ ok: false, code: 'UNKNOWN_ISSUER' });
    expect(checkLicense(w.license, trust, T0 + 400 * 24 * 3600_000)).toEqual({ ok: false, code: 'CERT_EXPIRED' });
    expect(checkLicense(null, trust, T0)).toEqual({ ok: false, code: 'MALFORMED' });
  });

  it('offline: per wallet (license), per terminal per period, per single amount', () => {
    const L = DEFAULT_RISK_LIMITS;
    expect(decideOffline(w.license.body, 500, 'EUR', usage(0), L, T0).ok).toBe(true);
    expect(decideOffline(w.license.body, 500, 'EUR', usage(600), L, T0)).toEqual({ ok: false, code: 'OFFLINE_LIMIT' });
    expect(decideOffline(w.license.body, 500, 'EUR', usage(0, L.terminalPeriodMinor - 499), L, T0)).toEqual({ ok: false, code: 'OFFLINE_LIMIT' });
    // A wallet whose own limit would allow it: the single-amount bound alone refuses.
    const rich = f.wallet({ offlineLimitMinor: L.maxSingleMinor * 10 });
    expect(decideOffline(rich.license.body, L.maxSingleMinor, 'EUR', usage(0), L, T0).ok).toBe(true);
    expect(decideOffline(rich.license.body, L.maxSingleMinor + 1, 'EUR', usage(0), L, T0)).toEqual({ ok: false, code: 'OFFLINE_LIMIT' });
    expect(decideOffline(w.license.body, 10, 'USD', usage(0), L, T0)).toEqual({ ok: false, code: 'CURRENCY_MISMATCH' });
  });

  it('no local decision without room in the outbox to queue it (beyond the reserve)', () => {
    const L = DEFAULT_RISK_LIMITS;
    const room = (n: number): UsageView => ({ ...usage(0), outboxRoom: () => n });
    expect(decideOffline(w.license.body, 500, 'EUR', room(OUTBOX_RESERVE + 1), L, T0).ok).toBe(true);
    expect(decideOffline(w.license.body, 500, 'EUR', room(OUTBOX_RESERVE), L, T0)).toEqual({ ok: false, code: 'OFFLINE_LIMIT' });
    const gate = (n: number) => decideGateLocal({ license: w.license.body, statement: null, fareMinor: 300, currency: 'EUR', hubKeys: [f.hubKey], usage: room(n), limits: L, nowMs: T0 });
    expect(gate(OUTBOX_RESERVE + 1)).toEqual({ ok: true, basis: 'offline-limit' });
    expect(gate(0)).toEqual({ ok: false, code: 'OFFLINE_LIMIT' });
  });

  it('statements count only when hub-signed, for this wallet, and fresh', () => {
    const L = DEFAULT_RISK_LIMITS;
    expect(trustedStatement(f.statement(w.hex, 10), w.hex, [f.hubKey], L, T0)).not.toBeNull();
    expect(trustedStatement(f.statement(w.hex, 10), f.wallet().hex, [f.hubKey], L, T0)).toBeNull();
    expect(trustedStatement(f.statement(w.hex, 10, T0, new Fixture().hub), w.hex, [f.hubKey], L, T0)).toBeNull();
    expect(trustedStatement(f.statement(w.hex, 10, T0 - L.maxStatementAgeMs - 1), w.hex, [f.hubKey], L, T0)).toBeNull();
    const st = f.statement(w.hex, 10);
    expect(trustedStatement({ ...st, body: { ...st.body, balanceMinor: 10_000 } }, w.hex, [f.hubKey], L, T0)).toBeNull();
  });

  it('gate: the license offline credit first (no statement needed), then a covering statement', () => {
    const base = { license: w.license.body, currency: 'EUR', hubKeys: [f.hubKey], limits: DEFAULT_RISK_LIMITS, nowMs: T0 };
    expect(decideGateLocal({ ...base, statement: undefined, fareMinor: 300, usage: usage(0) })).toEqual({ ok: true, basis: 'offline-limit' });
    expect(decideGateLocal({ ...base, statement: undefined, fareMinor: 300, usage: usage(800) })).toEqual({ ok: 'need-statement' });
    expect(decideGateLocal({ ...base, statement: null, fareMinor: 300, usage: usage(800) })).toEqual({ ok: false, code: 'OFFLINE_LIMIT' });
    expect(decideGateLocal({ ...base, statement: f.statement(w.hex, 5000), fareMinor: 300, usage: usage(800, 0, 800) })).toEqual({ ok: true, basis: 'statement' });
    expect(decideGateLocal({ ...base, statement: f.statement(w.hex, 1000), fareMinor: 300, usage: usage(800, 0, 800) })).toEqual({ ok: false, code: 'INSUFFICIENT_FUNDS' });
    expect(decideGateLocal({ ...base, statement: f.statement(w.hex, 5000, T0, new Fixture().hub), fareMinor: 300, usage: usage(800) })).toEqual({ ok: false, code: 'OFFLINE_LIMIT' });
  });

  it("gate: what it let through since a statement is counted from the statement's time minus the allowed clock skew", () => {
    const asked: number[] = [];
    const seen: UsageView = { walletLocalMinor: (_w, since) => (since === undefined ? 800 : (asked.push(since), 800)), terminalPeriodMinor: () => 0, ticketUsed: () => false };
    const asOf = T0 - 60_000;
    decideGateLocal({ license: w.license.body, currency: 'EUR', hubKeys: [f.hubKey], limits: DEFAULT_RISK_LIMITS, nowMs: T0, statement: f.statement(w.hex, 5000, asOf), fareMinor: 300, usage: seen });
    expect(asked).toEqual([asOf - 5 * 60_000]);
  });
});
