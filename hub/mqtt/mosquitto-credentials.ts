/**
 * The credentials an external Mosquitto needs, kept in the hub's data folder and made once: the
 * secret each terminal's broker password derives from (`mosquitto-broker.key`), and the hub's own
 * broker password (`mosquitto-hub.password`, a text file: the hub config's `mqtt.passwordFile`).
 * Both owner-only, like the hub's other keys.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateSecret } from '../registry/keys.ts';

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
      writeFileSync(hubPasswordFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made meanwhile by another command: use it
    }
  }
  return { brokerSecret, hubPassword: readFileSync(hubPasswordFile, 'utf8').trim(), hubPasswordFile };
}
