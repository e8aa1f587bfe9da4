/**
 * CONNECT authentication for the embedded broker (issue 4): username = terminal id (= client id),
 * password = a connect token signed by the terminal's enrolled key (protocol/connect-token.ts).
 * Tokens are single use: the nonce is remembered for the token's lifetime, so a captured token
 * can't open a second session. Each terminal has its own bounded memory: one terminal flooding
 * CONNECTs fills only its own, and is refused while it is full, instead of pushing out another
 * terminal's nonces (which would make that terminal's captured token replayable).
 */
import { CONNECT_TOKEN_MAX_AGE_MS, NonceCache, checkConnectToken } from '../../protocol/index.ts';
import type { TerminalLookup } from './types.ts';

export type AuthVerdict =
  | { ok: true }
  | { ok: false; reason: 'NO_CREDENTIALS' | 'CLIENT_ID_MISMATCH' | 'UNKNOWN_TERMINAL' | 'REVOKED' | 'MALFORMED' | 'STALE_TIMESTAMP' | 'BAD_SIGNATURE' | 'REPLAY' | 'TOO_MANY_CONNECTS' };

/**
 * Live connect tokens remembered per terminal: a terminal reconnecting every second for the
 * tokens' whole lifetime (2 × 5 min) needs 600.
 */
export const MAX_LIVE_TOKENS_PER_TERMINAL = 1_000;

export class ConnectAuthenticator {
  /** Per enrolled terminal (unknown ones are refused before): bounded by the directory. */
  private readonly nonces = new Map<string, NonceCache>();

  constructor(
    private readonly directory: TerminalLookup,
    private readonly maxAgeMs = CONNECT_TOKEN_MAX_AGE_MS,
    private readonly maxLiveTokens = MAX_LIVE_TOKENS_PER_TERMINAL,
  ) {}

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
    let nonces = this.nonces.get(username);
    // A token is valid maxAgeMs either side of its time: remembered that long after its first use.
    if (!nonces) this.nonces.set(username, (nonces = new NonceCache(2 * this.maxAgeMs, this.maxLiveTokens)));
    const claim = nonces.claim(verdict.nonce, nowMs);
    if (claim === 'replay') return { ok: false, reason: 'REPLAY' };
    if (claim === 'full') return { ok: false, reason: 'TOO_MANY_CONNECTS' };
    return { ok: true };
  }
}
