import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { COMPACT_TYPES, decodeAnyForm, decodeCompact, encodeCompact, FIELD_KEYS } from './compact.ts';
import { encodeMessage, verifyMessage } from './codec.ts';
import { isErrorCode } from './errors.ts';
import { MESSAGE_SCHEMAS, MESSAGE_TYPES } from './schemas.ts';
import { buildMessageVectors, buildSampleMessages } from './vectors/messages.ts';

interface ZodDefLike {
  type: string;
  shape?: Record<string, { _zod: { def: ZodDefLike } }>;
  innerType?: { _zod: { def: ZodDefLike } };
  element?: { _zod: { def: ZodDefLike } };
  options?: { _zod: { def: ZodDefLike } }[];
  valueType?: { _zod: { def: ZodDefLike } };
}

function fieldNames(def: ZodDefLike, out: Set<string>): Set<string> {
  for (const [k, v] of Object.entries(def.shape ?? {})) {
    out.add(k);
    fieldNames(v._zod.def, out);
  }
  for (const child of [def.innerType, def.element, def.valueType]) if (child) fieldNames(child._zod.def, out);
  for (const o of def.options ?? []) fieldNames(o._zod.def, out);
  return out;
}

const vectors = buildMessageVectors();

describe('compact NFC encoding', () => {
  it('round-trips every sample message exactly, and signatures still verify', () => {
    for (const m of buildSampleMessages()) {
      const decoded = decodeCompact(encodeCompact(m), m.type);
      expect(decoded.ok).toBe(true);
      if (!decoded.ok) continue;
      expect(isDeepStrictEqual({ ...decoded.value }, m)).toBe(true);
      const signer = vectors.messages.find((v) => v.type === m.type)!.signer;
      expect(verifyMessage(decoded.value, vectors.keys[signer]!.publicKey)).toBe(true);
    }
  });

  it('is at most half the JSON wire size for every sample', () => {
    for (const m of buildSampleMessages()) {
      expect(encodeCompact(m).length, m.type).toBeLessThanOrEqual(encodeMessage(m).length * 0.5);
    }
  });

  it('has a type index for every message type and a key index for every schema field', () => {
    expect([...MESSAGE_TYPES].sort()).toEqual([...COMPACT_TYPES].sort());
    const names = new Set<string>();
    for (const schema of Object.values(MESSAGE_SCHEMAS)) fieldNames((schema as unknown as { _zod: { def: ZodDefLike } })._zod.def, names);
    for (const envelopeKey of ['v', 'sig', 'body']) names.delete(envelopeKey);
    expect([...names].filter((n) => !FIELD_KEYS.includes(n))).toEqual([]);
    expect(new Set(FIELD_KEYS).size).toBe(FIELD_KEYS.length);
  });

  it('decodeAnyForm reads both forms', () => {
    for (const m of buildSampleMessages()) {
      expect(decodeAnyForm(encodeMessage(m), m.type).ok).toBe(true);
      expect(decodeAnyForm(encodeCompact(m), m.type).ok).toBe(true);
    }
    const bad = decodeAnyForm(new Uint8Array([0x7b, 0x7d]), 'ticket');
    expect(bad.ok || bad.code).toBe('UNSUPPORTED_VERSION');
  });

  it('the vectors carry the compact form', () => {
    for (const m of vectors.messages) expect(m.compactHex).toMatch(/^d99e35/); // tag 40501
  });

  it('rejects 20,000 mutated compact messages with an error code and never throws', () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 0x1_0000_0000);
    const samples = buildSampleMessages().map((m) => ({ m, bytes: encodeCompact(m) }));
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const { m, bytes } = samples[i % samples.length]!;
      const b = Uint8Array.from(i % 3 === 0 ? bytes.subarray(0, Math.floor(rand() * bytes.length)) : bytes);
      if (i % 3 !== 0) {
        for (let f = 0; f < 1 + (i % 3); f++) {
          const pos = Math.floor(rand() * b.length);
          b[pos] = b[pos]! ^ (1 << Math.floor(rand() * 8));
        }
      }
      const res = decodeCompact(b, MESSAGE_TYPES);
      if (!res.ok) {
        expect(isErrorCode(res.code)).toBe(true);
        continue;
      }
      // A flip may land in a signed value (the signature check catches it) or leave the meaning intact.
      const signer = vectors.messages.find((v) => v.type === res.value.type)?.signer;
      const valid = signer !== undefined && verifyMessage(res.value, vectors.keys[signer]!.publicKey);
      if (valid) {
        expect(isDeepStrictEqual({ ...res.value }, m)).toBe(true);
        accepted++;
      }
    }
    expect(accepted).toBeLessThan(1000);
  });
});
