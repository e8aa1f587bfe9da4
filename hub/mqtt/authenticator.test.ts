import { describe, expect, it } from 'vitest';
import { generateKeyPair, makeConnectToken, toHex, utf8 } from '../../protocol/index.ts';
import { ConnectAuthenticator } from './authenticator.ts';

const keys = generateKeyPair();
const directory = {
  lookupTerminal: (id: string) =>
    id === 'pos-1' || id === 'pos-2' ? { publicKey: toHex(keys.publicKey), revoked: false } : id === 'pos-old' ? { publicKey: toHex(keys.publicKey), revoked: true } : undefined,
};
const now = 1_800_000_000_000;

describe('ConnectAuthenticator', () => {
  it('accepts a fresh token once and refuses its replay', () => {
    const auth = new ConnectAuthenticator(directory);
    const token = utf8(makeConnectToken('pos-1', keys.secretKey, now));
    expect(auth.check('pos-1', 'pos-1', token, now + 1000)).toEqual({ ok: true });
    expect(auth.check('pos-1', 'pos-1', token, now + 2000)).toEqual({ ok: false, reason: 'REPLAY' });
  });

  it.each([
    ['no credentials', 'pos-1', undefined, undefined, 'NO_CREDENTIALS'],
    ['client id ≠ username', 'other', 'pos-1', makeConnectToken('pos-1', keys.secretKey, now), 'CLIENT_ID_MISMATCH'],
    ['unknown terminal', 'pos-9', 'pos-9', makeConnectToken('pos-9', keys.secretKey, now), 'UNKNOWN_TERMINAL'],
    ['revoked terminal', 'pos-old', 'pos-old', makeConnectToken('pos-old', keys.secretKey, now), 'REVOKED'],
    ['malformed token', 'pos-1', 'pos-1', 'ct1.nope', 'MALFORMED'],
    ['stale token', 'pos-1', 'pos-1', makeConnectToken('pos-1', keys.secretKey, now - 10 * 60_000), 'STALE_TIMESTAMP'],
    ['token from the future', 'pos-1', 'pos-1', makeConnectToken('pos-1', keys.secretKey, now + 10 * 60_000), 'STALE_TIMESTAMP'],
    ['token signed by another key', 'pos-1', 'pos-1', makeConnectToken('pos-1', generateKeyPair().secretKey, now), 'BAD_SIGNATURE'],
    ['token made for another terminal id', 'pos-1', 'pos-1', makeConnectToken('pos-2', keys.secretKey, now), 'BAD_SIGNATURE'],
  ] as const)('refuses %s', (_name, clientId, username, password, reason) => {
    const auth = new ConnectAuthenticator(directory);
    expect(auth.check(clientId, username, password === undefined ? undefined : utf8(password), now)).toEqual({ ok: false, reason });
  });

  it('refuses the replay of a token dated at the far edge of its validity until its very last millisecond', () => {
    const maxAge = 5 * 60_000;
    const auth = new ConnectAuthenticator(directory, maxAge);
    // Dated maxAge ahead: valid from its first use (now) through now + 2 × maxAge inclusive.
    const token = utf8(makeConnectToken('pos-1', keys.secretKey, now + maxAge));
    expect(auth.check('pos-1', 'pos-1', token, now)).toEqual({ ok: true });
    expect(auth.check('pos-1', 'pos-1', token, now + 2 * maxAge)).toEqual({ ok: false, reason: 'REPLAY' });
    expect(auth.check('pos-1', 'pos-1', token, now + 2 * maxAge + 1)).toEqual({ ok: false, reason: 'STALE_TIMESTAMP' });
  });

  it("a terminal flooding CONNECTs is refused once its own memory is full, and never pushes out another terminal's tokens", () => {
    const auth = new ConnectAuthenticator(directory, undefined, 5);
    const victimToken = utf8(makeConnectToken('pos-2', keys.secretKey, now));
    expect(auth.check('pos-2', 'pos-2', victimToken, now)).toEqual({ ok: true });
    for (let i = 0; i < 5; i++) expect(auth.check('pos-1', 'pos-1', utf8(makeConnectToken('pos-1', keys.secretKey, now + i)), now + 10)).toEqual({ ok: true });
    expect(auth.check('pos-1', 'pos-1', utf8(makeConnectToken('pos-1', keys.secretKey, now + 99)), now + 10)).toEqual({ ok: false, reason: 'TOO_MANY_CONNECTS' });
    expect(auth.check('pos-2', 'pos-2', victimToken, now + 20)).toEqual({ ok: false, reason: 'REPLAY' });
    // Once the flood's tokens expire, the terminal connects again.
    expect(auth.check('pos-1', 'pos-1', utf8(makeConnectToken('pos-1', keys.secretKey, now + 10 * 60_000)), now + 10 * 60_000 + 11)).toEqual({ ok: true });
  });

  it('refuses a token dated before the broker started (its nonce memory starts then), from its very millisecond on accepts', () => {
    const started = now;
    const auth = new ConnectAuthenticator(directory, undefined, undefined, started);
    expect(auth.check('pos-1', 'pos-1', utf8(makeConnectToken('pos-1', keys.secretKey, started - 1)), started + 1000)).toEqual({ ok: false, reason: 'BEFORE_START' });
    expect(auth.check('pos-1', 'pos-1', utf8(makeConnectToken('pos-1', keys.secretKey, started)), started + 1000)).toEqual({ ok: true });
    // Still the signature first: a forged old token is BAD_SIGNATURE, not a hint about the start.
    expect(auth.check('pos-1', 'pos-1', utf8(makeConnectToken('pos-1', generateKeyPair().secretKey, started - 1)), started + 1000)).toEqual({ ok: false, reason: 'BAD_SIGNATURE' });
  });

  it('refuses an absurdly long password without parsing it', () => {
    const auth = new ConnectAuthenticator(directory);
    expect(auth.check('pos-1', 'pos-1', new Uint8Array(10_000), now)).toEqual({ ok: false, reason: 'MALFORMED' });
  });
});
