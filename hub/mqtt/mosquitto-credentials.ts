/**
 * The credentials an external Mosquitto needs, kept in the hub's data folder and made once: the
 * secret each terminal's broker password derives from (`mosquitto-broker.key`), and the hub's own
 * broker password (`mosquitto-hub.password`, a text file: the hub config's `mqtt.passwordFile`).
 * Both owner-only, like the hub's other keys, and written the same way (hub/registry/keys.ts
 * `writeNewSecretKey`: exclusive create, mode 0600, the file and its folder fsynced).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KeyFileError, loadOrCreateSecret, writeNewSecretKey } from '../registry/keys.ts';

/** The hub's broker password: 24 random bytes, as 48 lowercase hex chars (one line). */
const HUB_PASSWORD_BYTES = 24;
const HUB_PASSWORD_TEXT = new RegExp(`^[0-9a-f]{${HUB_PASSWORD_BYTES * 2}}\\n?$`);

export interface MosquittoCredentials {
  readonly brokerSecret: Uint8Array;
  readonly hubPassword: string;
  readonly hubPasswordFile: string;
}

export function mosquittoCredentials(dataDir: string): MosquittoCredentials {
  const brokerSecret = loadOrCreateSecret(dataDir, 'mosquitto-broker', () => randomBytes(32));
  const hubPasswordFile = join(dataDir, 'mosquitto-hub.password');
  if (!existsSync(hubPasswordFile)) {
    try {
      writeNewSecretKey(hubPasswordFile, randomBytes(HUB_PASSWORD_BYTES));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made meanwhile by another command: use it
    }
  }
  return { brokerSecret, hubPassword: readHubPassword(hubPasswordFile), hubPasswordFile };
}

/**
 * The broker secret when this data folder has one (`mosquitto-files` or `broker-password` made it:
 * an external Mosquitto is in use), else undefined — never made here: a hub on the embedded broker
 * needs none. What prints a certificate (enroll, reissue) prints the terminal's broker password
 * with it only then.
 */
export function existingBrokerSecret(dataDir: string): Uint8Array | undefined {
  if (!existsSync(join(dataDir, 'mosquitto-broker.key'))) return undefined;
  return loadOrCreateSecret(dataDir, 'mosquitto-broker', () => randomBytes(32));
}

/**
 * The hub's broker password from its file, exactly as `mosquittoCredentials` writes it. Anything
 * else — an empty file (a power cut between its creation and its write), a short or edited one —
 * is refused (KeyFileError, KEY_FILE_INVALID), never used: an empty password hashed into Mosquitto's
 * passwd would open the hub's account (readwrite on every topic) to anyone.
 */
export function readHubPassword(file: string): string {
  const text = readFileSync(file, 'utf8');
  if (!HUB_PASSWORD_TEXT.test(text)) {
    const found = text.length === 0 ? 'it is empty' : `it holds ${text.length} bytes of something else`;
    throw new KeyFileError(
      file,
      `expected the hub's broker password, ${HUB_PASSWORD_BYTES * 2} lowercase hex chars, but ${found} (cut short while it was made?); ` +
        'it is not used: delete it, run `tapsettle mosquitto-files` again (it makes a new one and puts it in the passwd file), reload Mosquitto (kill -HUP) and restart the hub',
    );
  }
  // Someone loosened the mode: tighten it again rather than keep a readable secret around.
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return text.trim();
}
