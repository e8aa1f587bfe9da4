/**
 * Issue 2 "Bad input": ≥ 100,000 random and mutated messages (truncated, bit-flipped, oversized,
 * wrong types, wrong version, swapped signatures, random bytes) must each be rejected with an
 * error code, never a throw or a hang; every valid message must be accepted.
 */
import { describe, expect, it } from 'vitest';
import { canonicalBytes } from './canonical.ts';
import { decodeMessage, signMessage, verifyMessage } from './codec.ts';
import { isErrorCode } from './errors.ts';
import { toHex } from './hex.ts';
import { newRequestId } from './replay.ts';
import { MESSAGE_TYPES, type MessageType } from './schemas.ts';
import { buildMessageVectors, VECTOR_KEYS } from './vectors/messages.ts';

const vectors = buildMessageVectors();
const signerKey = new Map(vectors.messages.map((m) => [m.type, vectors.keys[m.signer]!.publicKey]));
const encoder = new TextEncoder();

/** xorshift32: deterministic, so a failure reproduces. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

type Verdict = { accepted: true; canonical: string } | { accepted: false; code: string };

/** What a receiver does: decode (size, JSON, schema), then verify with the type's signer key. */
function receive(bytes: Uint8Array | string): Verdict {
  const decoded = decodeMessage(bytes, MESSAGE_TYPES);
  if (!decoded.ok) return { accepted: false, code: decoded.code };
  const key = signerKey.get(decoded.value.type)!;
  if (!verifyMessage(decoded.value, key)) return { accepted: false, code: 'BAD_SIGNATURE' };
  return { accepted: true, canonical: toHex(canonicalBytes(decoded.value.type, decoded.value.body)) };
}

const WRONG_VALUES: unknown[] = [null, true, -1, 1.5, 1e300, '', 'x'.repeat(300), [], {}, [1, 2], { a: 1 }, 'ZZ', Number.MAX_SAFE_INTEGER + 2];

function mutateValue(obj: unknown, rand: () => number, depth = 0): unknown {
  if (obj === null || typeof obj !== 'object' || depth > 6) return WRONG_VALUES[Math.floor(rand() * WRONG_VALUES.length)];
  const clone: Record<string, unknown> | unknown[] = Array.isArray(obj) ? [...obj] : { ...(obj as Record<string, unknown>) };
  const keys = Object.keys(clone);
  if (keys.length === 0) return WRONG_VALUES[0];
  const k = keys[Math.floor(rand() * keys.length)]!;
  const r = rand();
  if (r < 0.15) delete (clone as Record<string, unknown>)[k];
  else if (r < 0.25) (clone as Record<string, unknown>)[`x${k}`] = 1;
  else (clone as Record<string, unknown>)[k] = mutateValue((clone as Record<string, unknown>)[k], rand, depth + 1);
  return clone;
}

const mutators: Record<string, (wire: string, rand: () => number, other: string) => Uint8Array | string> = {
  truncated: (w, rand) => w.slice(0, Math.floor(rand() * w.length)),
  bitflip: (w, rand) => {
    const b = encoder.encode(w);
    const flips = 1 + Math.floor(rand() * 3);
    for (let i = 0; i < flips; i++) {
      const pos = Math.floor(rand() * b.length);
      b[pos] = b[pos]! ^ (1 << Math.floor(rand() * 8));
    }
    return b;
  },
  oversized: (w, rand) => w.slice(0, -1) + `,"pad":"${'a'.repeat(20_000 + Math.floor(rand() * 50_000))}"}`,
  wrongType: (w, rand) => JSON.stringify(mutateValue(JSON.parse(w), rand)),
  wrongVersion: (w, rand) => JSON.stringify({ ...JSON.parse(w), v: [0, 2, '1', 1.0001, null][Math.floor(rand() * 5)] }),
  swappedSig: (w, _rand, other) => JSON.stringify({ ...JSON.parse(w), sig: JSON.parse(other).sig }),
  swappedType: (w, _rand, other) => JSON.stringify({ ...JSON.parse(w), type: JSON.parse(other).type }),
  randomBytes: (_w, rand) => Uint8Array.from({ length: Math.floor(rand() * 600) }, () => Math.floor(rand() * 256)),
  randomJson: (_w, rand) => JSON.stringify({ v: 1, type: MESSAGE_TYPES[Math.floor(rand() * MESSAGE_TYPES.length)], body: mutateValue({}, rand), sig: 'ab'.repeat(64) }),
};

describe('decoder under hostile input', () => {
  it('accepts every valid vector', () => {
    for (const m of vectors.messages) expect(receive(m.wire)).toMatchObject({ accepted: true, canonical: m.canonicalHex });
  });

  it('accepts freshly signed valid messages of random content', () => {
    const rand = rng(7);
    for (let i = 0; i < 2000; i++) {
      const outcome = (['dispensed', 'passed', 'delivered', 'failed'] as const)[Math.floor(rand() * 4)]!;
      const msg = signMessage(
        'completion.receipt',
        { requestId: newRequestId(), terminalId: `t-${Math.floor(rand() * 1e6)}`, outcome, time: Math.floor(rand() * 2 ** 42) },
        VECTOR_KEYS.terminal.secretKey,
      );
      expect(receive(JSON.stringify(msg)).accepted).toBe(true);
    }
  });

  it('rejects 100,000+ mutated messages, each with an error code', () => {
    const rand = rng(20261123);
    const names = Object.keys(mutators);
    const counts: Record<string, number> = {};
    let total = 0;
    let unchanged = 0;
    for (let i = 0; i < 104_000; i++) {
      const base = vectors.messages[i % vectors.messages.length]!;
      const other = vectors.messages[(i * 7 + 3) % vectors.messages.length]!;
      const name = names[i % names.length]!;
      let input: Uint8Array | string;
      let verdict: Verdict;
      try {
        input = mutators[name]!(base.wire, rand, other.wire);
        verdict = receive(input);
      } catch (err) {
        throw new Error(`${name} on ${base.type} threw: ${(err as Error).message}`);
      }
      total++;
      if (verdict.accepted) {
        // Only a mutation that leaves the signed meaning intact may pass (e.g. swapping in the same sig).
        if (verdict.canonical !== base.canonicalHex && verdict.canonical !== other.canonicalHex) {
          throw new Error(`${name} on ${base.type} was accepted: ${String(input).slice(0, 200)}`);
        }
        unchanged++;
      } else {
        expect(isErrorCode(verdict.code)).toBe(true);
        counts[verdict.code] = (counts[verdict.code] ?? 0) + 1;
      }
    }
    expect(total).toBeGreaterThanOrEqual(100_000);
    // Mutations that changed nothing are rare (e.g. swapping a message's sig with its own).
    expect(unchanged).toBeLessThan(total / 20);
    for (const code of ['MALFORMED', 'TOO_LARGE', 'UNSUPPORTED_VERSION', 'WRONG_TYPE', 'BAD_SIGNATURE']) {
      expect(counts[code] ?? 0, code).toBeGreaterThan(100);
    }
  }, 120_000);

  it('every message type has a signer in the vectors', () => {
    for (const t of MESSAGE_TYPES) expect(signerKey.has(t as MessageType), t).toBe(true);
  });
});
