import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeMessage, verifyMessage } from './codec.ts';
import { MESSAGE_TYPES, type MessageType } from './schemas.ts';
import { buildMessageVectors, MESSAGE_VECTORS_PATH } from './vectors/messages.ts';

const stored = JSON.parse(readFileSync(MESSAGE_VECTORS_PATH, 'utf8')) as ReturnType<typeof buildMessageVectors>;

describe('message test vectors (protocol/vectors/messages.json)', () => {
  it('regenerate byte for byte from the fixed keys', () => {
    expect(buildMessageVectors()).toEqual(stored);
  });

  it('cover every message type', () => {
    const covered = new Set(stored.messages.map((m) => m.type));
    expect(MESSAGE_TYPES.filter((t) => !covered.has(t))).toEqual([]);
  });

  it.each(stored.messages.map((m, i) => [i, m.type, m] as const))('#%i %s: wire decodes and the signature verifies with its signer key', (_i, type, m) => {
    const decoded = decodeMessage(m.wire, type as MessageType);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    const signer = stored.keys[m.signer]!.publicKey;
    expect(verifyMessage(decoded.value, signer)).toBe(true);
    expect(Buffer.from(m.canonicalHex, 'hex').toString('utf8').startsWith(`tapsettle/1/${type}\n`)).toBe(true);
  });
});
