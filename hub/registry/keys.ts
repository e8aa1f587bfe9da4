/**
 * The hub's long-lived secret keys (hub signing key, issuer key, card authorizer's sealing key in
 * the simulator), generated on first start and kept in files of mode 0600 in the data dir.
 * Secret bytes never reach a log line or an error message.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fromHex, generateKeyPair, publicKeyOf, toHex, type KeyPair } from '../../protocol/index.ts';

export class KeyFileError extends Error {
  readonly code = 'KEY_FILE_INVALID';
  constructor(file: string, why: string) {
    super(`key file ${file}: ${why}`);
    this.name = 'KeyFileError';
  }
}

function readSecret(file: string): Uint8Array {
  const text = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(text)) throw new KeyFileError(file, 'expected 64 lowercase hex chars');
  // Someone loosened the mode: tighten it again rather than keep a readable secret around.
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return fromHex(text);
}

/** Creates a key file (mode 0600, exclusive: never overwrites) and syncs it and its directory. */
export function writeNewSecretKey(file: string, secret: Uint8Array): void {
  const fd = openSync(file, 'wx', 0o600);
  try {
    writeSync(fd, `${toHex(secret)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const dir = openSync(dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** Loads an existing Ed25519 key file (KeyFileError when it is malformed). */
export function loadEd25519Key(file: string): KeyPair {
  const secretKey = readSecret(file);
  return { secretKey, publicKey: publicKeyOf(secretKey) };
}

/** Loads `<dataDir>/<name>.key` or creates it (mode 0600, exclusive create: no race overwrites it). */
export function loadOrCreateEd25519Key(dataDir: string, name: string): KeyPair {
  const file = join(dataDir, `${name}.key`);
  if (existsSync(file)) return loadEd25519Key(file);
  const pair = generateKeyPair();
  writeNewSecretKey(file, pair.secretKey);
  return pair;
}

/** Same for a raw 32-byte secret of another curve (X25519): caller derives the public key. */
export function loadOrCreateSecret(dataDir: string, name: string, generate: () => Uint8Array): Uint8Array {
  const file = join(dataDir, `${name}.key`);
  if (existsSync(file)) return readSecret(file);
  const secret = generate();
  writeNewSecretKey(file, secret);
  return secret;
}
