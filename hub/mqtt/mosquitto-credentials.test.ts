import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyFileError } from '../registry/keys.ts';
import { mosquittoCredentials } from './mosquitto-credentials.ts';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});
const dataDir = () => (dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-mosquitto-creds-')));

describe("the hub's Mosquitto credentials", () => {
  it('makes the hub password once, owner-only, 48 hex chars, and gives the same one back at every later call', () => {
    const d = dataDir();
    const first = mosquittoCredentials(d);
    expect(first.hubPasswordFile).toBe(path.join(d, 'mosquitto-hub.password'));
    expect(first.hubPassword).toMatch(/^[0-9a-f]{48}$/);
    expect(readFileSync(first.hubPasswordFile, 'utf8')).toBe(`${first.hubPassword}\n`);
    for (const f of [first.hubPasswordFile, path.join(d, 'mosquitto-broker.key')]) expect(statSync(f).mode & 0o777).toBe(0o600);
    const again = mosquittoCredentials(d);
    expect(again.hubPassword).toBe(first.hubPassword);
    expect(Buffer.from(again.brokerSecret).equals(Buffer.from(first.brokerSecret))).toBe(true);
    // A loosened mode is tightened again.
    chmodSync(first.hubPasswordFile, 0o644);
    expect(mosquittoCredentials(d).hubPassword).toBe(first.hubPassword);
    expect(statSync(first.hubPasswordFile).mode & 0o777).toBe(0o600);
  });

  it.each([
    ['empty (a power cut between its creation and its write)', ''],
    ['cut short', 'a1b2c3d4\n'],
    ['edited by hand', 'hunter2\n'],
    ['upper-case hex', `${'A'.repeat(48)}\n`],
    ['two lines', `${'a'.repeat(48)}\n${'b'.repeat(48)}\n`],
  ])('refuses a hub password file that is %s, naming the file and what to do, and never returns its content', (_name, text) => {
    const d = dataDir();
    const file = path.join(d, 'mosquitto-hub.password');
    writeFileSync(file, text, { mode: 0o600 });
    let err: unknown;
    try {
      mosquittoCredentials(d);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KeyFileError);
    expect(err).toMatchObject({ code: 'KEY_FILE_INVALID' });
    const message = (err as Error).message;
    expect(message).toContain(file);
    expect(message).toContain('delete it, run `tapsettle mosquitto-files` again');
    if (text.trim() !== '') expect(message).not.toContain(text.trim());
    expect(readFileSync(file, 'utf8')).toBe(text); // left for the operator, not overwritten
  });
});
