import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataDirBusyError, lockDataDir } from './data-dir-lock.ts';
import { derivedId, engineRequestId } from './engine-ids.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tapsettle-lock-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('data dir lock', () => {
  it('one holder at a time; released on release()', () => {
    const a = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(DataDirBusyError);
    a.release();
    expect(existsSync(join(dir, 'hub.lock'))).toBe(false);
    lockDataDir(dir).release();
  });

  it('takes over a lock left by a dead process', () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(join(dir, 'hub.lock'), `${dead.stdout}\n`);
    const lock = lockDataDir(dir);
    lock.release();
  });
});

describe('engine ids', () => {
  it('passes 128-bit ids through, hashes longer ones, derives stable ids', () => {
    const id = 'ab'.repeat(16);
    expect(engineRequestId(id)).toBe(id);
    const long = 'cd'.repeat(32);
    expect(engineRequestId(long)).toMatch(/^[0-9a-f]{32}$/);
    expect(engineRequestId(long)).toBe(engineRequestId(long));
    expect(derivedId('receipt-refund', id)).toBe(derivedId('receipt-refund', id));
    expect(derivedId('receipt-refund', id)).not.toBe(derivedId('ticket', id));
  });
});
