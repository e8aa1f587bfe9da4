/**
 * CONNECT authentication for the embedded broker (issue 4): username = terminal id (= client id),
 * password = a connect token signed by the terminal's enrolled key (protocol/connect-token.ts).
 * Tokens are single use: the nonce is remembered for the token's lifetime, so a captured token
 * can't open a second session. Each terminal has its own bounded memory: one terminal flooding
 * CONNECTs fills only its own, and is refused while it is full, instead of pushing out another
 * terminal's nonces (which would make that terminal's captured token replayable).
 * The nonces live in memory, so a hub that restarts would accept again a token captured before
 * (within its validity): a token dated before `notBeforeMs` (the broker's start) is refused.
 * Terminals make a fresh token for every connection attempt, so theirs after a restart are dated
 * after it. No allowance for clock skew: it would reopen the window for every terminal. The
 * token's time is the terminal's clock; one that runs behind the hub's by d is refused for up to
 * d after a restart (it retries with new tokens), and a token of one that runs ahead by d stays
 * replayable at a restart that follows its use within d (d ≤ maxAgeMs, which checkConnectToken
 * allows either way).
 */
import { CONNECT_TOKEN_MAX_AGE_MS, NonceCache, checkConnectToken } from '../../protocol/index.ts';
import type { TerminalLookup } from './types.ts';

export type AuthVerdict =
  | { ok: true }
  | {
      ok: false;
      reason: 'NO_CREDENTIALS' | 'CLIENT_ID_MISMATCH' | 'UNKNOWN_TERMINAL' | 'REVOKED' | 'MALFORMED' | 'STALE_TIMESTAMP' | 'BAD_SIGNATURE' | 'BEFORE_START' | 'REPLAY' | 'TOO_MANY_CONNECTS';
    };

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
    /** Tokens dated before this (ms, the terminal's clock) are refused: the broker's start, whose nonce memory begins then. */
    private readonly notBeforeMs = Number.NEGATIVE_INFINITY,
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
    // The format is checked: "ct1.<time>.<nonce>.<sig>". Made before this broker remembered nonces.
    if (Number(token.split('.')[1]) < this.notBeforeMs) return { ok: false, reason: 'BEFORE_START' };
    let nonces = this.nonces.get(username);
    // A token is valid maxAgeMs either side of its time: remembered that long after its first use.
    if (!nonces) this.nonces.set(username, (nonces = new NonceCache(2 * this.maxAgeMs, this.maxLiveTokens)));
    const claim = nonces.claim(verdict.nonce, nowMs);
    if (claim === 'replay') return { ok: false, reason: 'REPLAY' };
    if (claim === 'full') return { ok: false, reason: 'TOO_MANY_CONNECTS' };
    return { ok: true };
  }
}
