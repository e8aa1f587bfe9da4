import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateKeyPair, toHex } from '../../protocol/index.ts';
import { brokerPasswordFor } from './mosquitto-config.ts';

const secret = randomBytes(32);
const subject = (terminalId: string) => ({ terminalId, publicKey: toHex(generateKeyPair().publicKey), serial: randomBytes(16).toString('hex') });

describe("a terminal's broker password", () => {
  it('is bound to the terminal id, its key and its certificate serial: each one changed gives another password, the same ones the same', () => {
    const pos1 = subject('pos-1');
    const pos2 = subject('pos-2');
    const p = brokerPasswordFor(secret, pos1);
    expect(p).toMatch(/^[0-9a-f]{64}$/);
    expect(brokerPasswordFor(secret, { ...pos1 })).toBe(p);
    const others = [
      brokerPasswordFor(secret, pos2), // another terminal
      brokerPasswordFor(secret, { ...pos2, publicKey: pos1.publicKey, serial: pos1.serial }), // another id, same certificate data
      brokerPasswordFor(secret, { ...pos1, publicKey: toHex(generateKeyPair().publicKey) }), // re-keyed
      brokerPasswordFor(secret, { ...pos1, serial: randomBytes(16).toString('hex') }), // certificate reissued
      brokerPasswordFor(randomBytes(32), pos1), // another broker secret
    ];
    expect(new Set([p, ...others]).size).toBe(6);
  });

  it("is not the old id-only derivation: a terminal.json copied before a reissue doesn't fit after it", () => {
    const pos1 = subject('pos-1');
    const idOnly = createHmac('sha256', secret).update('tapsettle/mqtt-password/pos-1').digest('hex');
    expect(brokerPasswordFor(secret, pos1)).not.toBe(idOnly);
  });

  it.each([
    ['a short secret', randomBytes(8), subject('pos-1')],
    ['an id with a newline', secret, { ...subject('pos-1'), terminalId: 'pos-1\npos-2' }],
    ['a key not in hex', secret, { ...subject('pos-1'), publicKey: 'x'.repeat(64) }],
    ['no serial', secret, { ...subject('pos-1'), serial: '' }],
  ])('refuses %s (a programmer error)', (_name, s, subj) => {
    expect(() => brokerPasswordFor(s, subj)).toThrow(TypeError);
  });
});
