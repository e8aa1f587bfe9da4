import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
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
  it('one holder at a time, also within one process; release() frees it', () => {
    const a = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(DataDirBusyError);
    a.release();
    lockDataDir(dir).release();
  });

  it('held by another process: busy, naming its pid; freed by the kernel the moment that process is killed (no stale lock)', async () => {
    const holder = spawn(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(join(import.meta.dirname, 'data-dir-lock.ts'))}).then((m) => { m.lockDataDir(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000); })`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
        holder.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
      });
      const busy = (() => {
        try {
          lockDataDir(dir);
          return undefined;
        } catch (err) {
          return err;
        }
      })();
      expect(busy).toBeInstanceOf(DataDirBusyError);
      expect((busy as DataDirBusyError).pid).toBe(holder.pid);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((resolve) => holder.once('exit', resolve));
    }
    lockDataDir(dir).release();
  });

  it("takes over an older hub's pid file left by a dead process; one of a live process is busy", () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(join(dir, 'hub.lock'), `${dead.stdout}\n`);
    lockDataDir(dir).release();
    rmSync(join(dir, 'hub.lock'));
    writeFileSync(join(dir, 'hub.lock'), `${process.pid}\n`);
    expect(() => lockDataDir(dir)).toThrow(DataDirBusyError);
    expect(existsSync(join(dir, 'hub.lock'))).toBe(true);
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
