/**
 * CONNECT authentication for the embedded broker (issue 4): username = terminal id (= client id),
 * password = a connect token signed by the terminal's enrolled key (protocol/connect-token.ts).
 * Tokens are single use: the nonce is remembered for the token's lifetime, so a captured token
 * can't open a second session.
 */
import { CONNECT_TOKEN_MAX_AGE_MS, NonceCache, checkConnectToken } from '../../protocol/index.ts';
import type { TerminalLookup } from './types.ts';

export type AuthVerdict =
  | { ok: true }
  | { ok: false; reason: 'NO_CREDENTIALS' | 'CLIENT_ID_MISMATCH' | 'UNKNOWN_TERMINAL' | 'REVOKED' | 'MALFORMED' | 'STALE_TIMESTAMP' | 'BAD_SIGNATURE' | 'REPLAY' };

export class ConnectAuthenticator {
  private readonly nonces: NonceCache;

  constructor(
    private readonly directory: TerminalLookup,
    private readonly maxAgeMs = CONNECT_TOKEN_MAX_AGE_MS,
  ) {
    // A token is valid maxAgeMs either side of its time, so remember nonces twice as long.
    this.nonces = new NonceCache(2 * maxAgeMs);
  }

  check(clientId: string, username: string | undefined, password: Uint8Array | undefined, nowMs: number): AuthVerdict {
    if (username === undefined || password === undefined) return { ok: false, reason: 'NO_CREDENTIALS' };
    if (username !== clientId) return { ok: false, reason: 'CLIENT_ID_MISMATCH' };
    const terminal = this.directory.lookupTerminal(username);
    if (!terminal) return { ok: false, reason: 'UNKNOWN_TERMINAL' };
    if (terminal.revoked) return { ok: false, reason: 'REVOKED' };
    if (password.length > 256) return { ok: false, reason: 'MALFORMED' };
    const token = Buffer.from(password).toString('latin1');
    const verdict = checkConnectToken(username, token, terminal.publicKey, nowMs, this.maxAgeMs);
    if (!verdict.ok) return { ok: false, reason: verdict.code };
    if (!this.nonces.claim(`${username}/${verdict.nonce}`, nowMs)) return { ok: false, reason: 'REPLAY' };
    return { ok: true };
  }
}
