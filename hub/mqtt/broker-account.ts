/**
 * The system account an external Mosquitto runs as. Started as root (Debian's service), Mosquitto
 * 2.x switches to its `user` (default `mosquitto`) before it reads the password, ACL, certificate
 * and key files and opens its log, and again at every reload (SIGHUP): so those files, and every
 * folder above them, must be reachable by that account, not by root.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';

export interface BrokerAccount {
  readonly name: string;
  readonly uid: number;
  /** Primary and supplementary groups (a key file is often root:ssl-cert 0640). */
  readonly gids: readonly number[];
}

export type BrokerAccountErrorCode = 'BROKER_USER_UNKNOWN' | 'BROKER_CANNOT_REACH' | 'BROKER_CANNOT_READ';

export class BrokerAccountError extends Error {
  readonly code: BrokerAccountErrorCode;
  /** The file or folder concerned (which of the operator's options named it is the CLI's to say). */
  readonly path: string | undefined;
  constructor(code: BrokerAccountErrorCode, message: string, path?: string) {
    super(message);
    this.name = 'BrokerAccountError';
    this.code = code;
    this.path = path;
  }
}

/** The account `name` on this machine (`id`, which asks NSS as Mosquitto's getpwnam does). */
export function lookupBrokerAccount(name: string): BrokerAccount {
  const id = (flag: string) => execFileSync('id', [flag, '--', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return { name, uid: Number(id('-u')), gids: id('-G').split(/\s+/).map(Number) };
  } catch {
    throw new BrokerAccountError('BROKER_USER_UNKNOWN', `no account "${name}" on this machine for Mosquitto to run as (the Debian package makes "mosquitto")`);
  }
}

/** True when this process may give files away (chown needs root). */
export function canChown(): boolean {
  return process.getuid?.() === 0;
}

function allows(st: Stats, account: BrokerAccount, bit: 4 | 1): boolean {
  if (account.uid === 0) return true;
  if (st.uid === account.uid) return (st.mode & (bit << 6)) !== 0;
  if (account.gids.includes(st.gid)) return (st.mode & (bit << 3)) !== 0;
  return (st.mode & bit) !== 0;
}

/** The file's status, or undefined when it does not exist (ENOENT; ENOTDIR: a file on the way). */
function statIfExists(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * Every folder from the root down to `dir` must let the account through. Folders that do not
 * exist yet are skipped: the caller creates them (mkdir -p, mode 0755 under the usual umask).
 */
export function assertReachable(dir: string, account: BrokerAccount): void {
  const abs = path.resolve(dir);
  for (let d = abs; ; d = path.dirname(d)) {
    const st = statIfExists(d);
    if (st && !allows(st, account, 1)) {
      throw new BrokerAccountError('BROKER_CANNOT_REACH', `Mosquitto runs as "${account.name}", which cannot enter ${d} (on the way to ${abs}): choose another folder, or let it through (chmod o+x ${d})`, d);
    }
    if (path.dirname(d) === d) return;
  }
}

/**
 * A file Mosquitto reads as the account: the operator's certificate or key, say. A file that is
 * not there is refused the same way (BROKER_CANNOT_READ): Mosquitto would fail at its start,
 * saying so only in its log.
 */
export function assertReadable(file: string, account: BrokerAccount): void {
  const abs = path.resolve(file);
  const st = statIfExists(abs);
  if (!st) throw new BrokerAccountError('BROKER_CANNOT_READ', `${abs} does not exist (Mosquitto, running as "${account.name}", is to read it)`, abs);
  assertReachable(path.dirname(abs), account);
  if (!allows(st, account, 4)) {
    throw new BrokerAccountError('BROKER_CANNOT_READ', `Mosquitto runs as "${account.name}", which cannot read ${abs}: give it to that account or its group (chgrp ${account.name} ${abs}; chmod 640 ${abs})`, abs);
  }
}

/** Gives the generated folder and files to the account (as root), so it reads them after the switch. */
export function giveTo(account: BrokerAccount, paths: readonly string[]): void {
  for (const p of paths) chownSync(p, account.uid, account.gids[0] ?? account.uid);
}
