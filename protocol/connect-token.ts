/**
 * MQTT CONNECT credential for a terminal (issue 4): username = terminal id, password = a short-lived
 * token signed by the terminal's enrolled key. The broker checks it against the key registry, so a
 * stolen token is useless after `maxAgeMs` and a revoked terminal is refused at CONNECT.
 *   token = "ct1." + timeMs + "." + nonceHex + "." + sigHex
 *   signed bytes = canonicalBytes("mqtt.connect", { terminalId, time, nonce })
 */
import { canonicalBytes } from './canonical.ts';
import { sign, verify } from './crypto.ts';
import { fromHex, toHex } from './hex.ts';
import { newChallenge, withinSkew } from './replay.ts';

const TOKEN_RE = /^ct1\.(\d{1,16})\.([0-9a-f]{32})\.([0-9a-f]{128})$/;
export const CONNECT_TOKEN_MAX_AGE_MS = 5 * 60_000;

export function makeConnectToken(terminalId: string, secretKey: Uint8Array, nowMs: number, nonce = newChallenge()): string {
  const sig = sign(canonicalBytes('mqtt.connect', { terminalId, time: nowMs, nonce }), secretKey);
  return `ct1.${nowMs}.${nonce}.${toHex(sig)}`;
}

export type ConnectTokenCheck = { ok: true; nonce: string } | { ok: false; code: 'MALFORMED' | 'STALE_TIMESTAMP' | 'BAD_SIGNATURE' };

export function checkConnectToken(
  terminalId: string,
  token: string,
  publicKey: Uint8Array | string,
  nowMs: number,
  maxAgeMs = CONNECT_TOKEN_MAX_AGE_MS,
): ConnectTokenCheck {
  const m = TOKEN_RE.exec(token);
  if (!m) return { ok: false, code: 'MALFORMED' };
  const time = Number(m[1]);
  const nonce = m[2]!;
  if (!withinSkew(time, nowMs, maxAgeMs)) return { ok: false, code: 'STALE_TIMESTAMP' };
  const key = typeof publicKey === 'string' ? fromHex(publicKey) : publicKey;
  const ok = verify(fromHex(m[3]!), canonicalBytes('mqtt.connect', { terminalId, time, nonce }), key);
  return ok ? { ok: true, nonce } : { ok: false, code: 'BAD_SIGNATURE' };
}
