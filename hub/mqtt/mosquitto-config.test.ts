import { createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateKeyPair, toHex } from '../../protocol/index.ts';
import { brokerPasswordFor, writeMosquittoFiles, type BrokerPasswordScheme, type BrokerPasswordSubject } from './mosquitto-config.ts';

const secret = randomBytes(32);
const subject = (terminalId: string, brokerPasswordScheme: BrokerPasswordScheme = 2): BrokerPasswordSubject => ({
  terminalId,
  publicKey: toHex(generateKeyPair().publicKey),
  serial: randomBytes(16).toString('hex'),
  brokerPasswordScheme,
});

/** A fixed secret (bytes 0..31) for the pinned vectors below. */
const fixedSecret = Uint8Array.from({ length: 32 }, (_, i) => i);

describe("a terminal's broker password", () => {
  it('scheme 2 is bound to the terminal id, its key and its certificate serial: each one changed gives another password, the same ones the same', () => {
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
      brokerPasswordFor(secret, { ...pos1, brokerPasswordScheme: 1 }), // the legacy scheme
    ];
    expect(new Set([p, ...others]).size).toBe(7);
  });

  it('scheme 1 (terminals enrolled before 2026-12-02) is the old id-only derivation, byte for byte: key and serial do not enter it', () => {
    // Vectors computed with brokerPasswordFor as of 977eedb^ (hub/mqtt/mosquitto-config.ts), the
    // passwords existing fleets hold in terminal.json; they must never change.
    expect(brokerPasswordFor(fixedSecret, { ...subject('pos-1', 1) })).toBe('e80dba0e1e3445036c897e1a89fd6761ceb27853e254ea79ea4fae0ba427b5d7');
    expect(brokerPasswordFor(fixedSecret, { ...subject('gate-central', 1) })).toBe('c54045b32e7bc9ac6296b75fb2a3cbc4a2de48c87a486c3448ef4cb6b2f843f7');
    const legacy = subject('pos-1', 1);
    expect(brokerPasswordFor(secret, { ...legacy, serial: randomBytes(16).toString('hex'), publicKey: toHex(generateKeyPair().publicKey) })).toBe(brokerPasswordFor(secret, legacy));
  });

  it('scheme 2 is the derivation 977eedb introduced, byte for byte (passwords it printed stay valid)', () => {
    const pos1: BrokerPasswordSubject = { terminalId: 'pos-1', publicKey: 'ab'.repeat(32), serial: '01'.repeat(16), brokerPasswordScheme: 2 };
    expect(brokerPasswordFor(fixedSecret, pos1)).toBe('85bcf5ccc8cbc56d1456b7b13a3825dc9a15cc0751ff82c2ddb59853862486cc');
  });

  it.each([
    ['a short secret', randomBytes(8), subject('pos-1')],
    ['an id with a newline', secret, { ...subject('pos-1'), terminalId: 'pos-1\npos-2' }],
    ['a key not in hex', secret, { ...subject('pos-1'), publicKey: 'x'.repeat(64) }],
    ['no serial', secret, { ...subject('pos-1'), serial: '' }],
    ['an unknown scheme', secret, { ...subject('pos-1'), brokerPasswordScheme: 3 as unknown as BrokerPasswordScheme }],
    ['no scheme', secret, { ...subject('pos-1'), brokerPasswordScheme: undefined as unknown as BrokerPasswordScheme }],
  ])('refuses %s (a programmer error)', (_name, s, subj) => {
    expect(() => brokerPasswordFor(s, subj)).toThrow(TypeError);
  });
});

describe('writeMosquittoFiles', () => {
  it("writes each terminal's password by its own scheme and names the unrevoked terminals still on the legacy one", () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-mosquitto-config-'));
    try {
      const terminals = [
        { ...subject('pos-new'), revoked: false },
        { ...subject('pos-old', 1), revoked: false },
        { ...subject('gate-old', 1), revoked: false },
        { ...subject('pos-stolen', 1), revoked: true },
      ];
      const files = writeMosquittoFiles({ dir: path.join(dir, 'm'), port: 1884, directory: { listTerminals: () => terminals }, brokerSecret: secret, hubPassword: 'h'.repeat(32), brokerUser: userInfo().username });
      expect(files.legacyPasswordTerminals).toEqual(['gate-old', 'pos-old']);
      const lines = readFileSync(files.passwordPath, 'utf8').split('\n').filter(Boolean).map((l) => l.split(':') as [string, string]);
      expect(lines.map(([user]) => user)).toEqual(['hub@tapsettle', 'pos-new', 'pos-old', 'gate-old']);
      // mosquitto_passwd's $7$: PBKDF2-SHA512 of the password under the line's salt and iterations.
      const hashes = (hash: string, password: string) => {
        const [, , iterations, salt, digest] = hash.split('$');
        return pbkdf2Sync(password, Buffer.from(salt!, 'base64'), Number(iterations), 64, 'sha512').toString('base64') === digest;
      };
      const idOnly = (id: string) => createHmac('sha256', secret).update(`tapsettle/mqtt-password/${id}`).digest('hex');
      const byUser = new Map(lines);
      expect(hashes(byUser.get('pos-old')!, idOnly('pos-old'))).toBe(true);
      expect(hashes(byUser.get('gate-old')!, idOnly('gate-old'))).toBe(true);
      expect(hashes(byUser.get('pos-new')!, brokerPasswordFor(secret, terminals[0]!))).toBe(true);
      expect(hashes(byUser.get('pos-new')!, idOnly('pos-new'))).toBe(false);
      // A real Mosquitto checking these lines: test/mqtt/cli-mosquitto.test.ts.
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
