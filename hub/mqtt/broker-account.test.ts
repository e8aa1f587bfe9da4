import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertReachable, assertReadable, BrokerAccountError, lookupBrokerAccount } from './broker-account.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-broker-account-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const code = (fn: () => void): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(BrokerAccountError);
    return (err as BrokerAccountError).code;
  }
};

describe('the account an external Mosquitto runs as', () => {
  it('is looked up with its groups; an unknown name is a typed error', () => {
    const me = lookupBrokerAccount(userInfo().username);
    expect(me.uid).toBe(userInfo().uid);
    expect(me.gids).toContain(userInfo().gid);
    expect(code(() => lookupBrokerAccount('no-such-account'))).toBe('BROKER_USER_UNKNOWN');
  });

  it('reads a file by owner, group or others bits, and enters a folder only with its x bit', () => {
    const account = { name: 'broker', uid: 4242, gids: [4243, 4244] };
    const file = path.join(dir, 'key.pem');
    writeFileSync(file, 'k');
    chmodSync(dir, 0o711);
    // Owned by someone else, no bits for others: unreadable; the group's bit counts when the
    // account is in that group (a supplementary one here, as Debian's ssl-cert is).
    chmodSync(file, 0o600);
    expect(code(() => assertReadable(file, account))).toBe('BROKER_CANNOT_READ');
    chmodSync(file, 0o644);
    expect(code(() => assertReadable(file, account))).toBeUndefined();
    if (process.getuid?.() === 0) {
      chownSync(file, 0, 4244);
      chmodSync(file, 0o640);
      expect(code(() => assertReadable(file, account))).toBeUndefined();
      chownSync(file, 4242, 0);
      chmodSync(file, 0o040); // the owner's own bits decide for the owner, not the group's
      expect(code(() => assertReadable(file, { ...account, gids: [0] }))).toBe('BROKER_CANNOT_READ');
    }
    chmodSync(dir, 0o700);
    expect(code(() => assertReachable(dir, account))).toBe('BROKER_CANNOT_REACH');
    expect(code(() => assertReadable(file, account))).toBe('BROKER_CANNOT_REACH');
    // root passes every check, as the kernel lets it.
    expect(code(() => assertReadable(file, { name: 'root', uid: 0, gids: [0] }))).toBeUndefined();
  });

  it('a file that is not there is refused as an unreadable one, naming it; a folder still to be made is no obstacle', () => {
    const account = { name: 'broker', uid: 4242, gids: [4243] };
    const missing = path.join(dir, 'no-such', 'key.pem');
    expect(code(() => assertReadable(missing, account))).toBe('BROKER_CANNOT_READ');
    try {
      assertReadable(missing, account);
    } catch (err) {
      expect(err).toMatchObject({ path: missing, message: `${missing} does not exist (Mosquitto, running as "broker", is to read it)` });
    }
    const open = mkdtempSync(path.join(tmpdir(), 'tapsettle-broker-account-open-'));
    try {
      chmodSync(open, 0o711);
      // mosquitto-files makes the --out folder (and its parents) itself.
      expect(code(() => assertReachable(path.join(open, 'a', 'b'), account))).toBeUndefined();
    } finally {
      rmSync(open, { recursive: true, force: true });
    }
  });
});
