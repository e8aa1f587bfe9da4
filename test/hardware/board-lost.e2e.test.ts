/**
 * `terminal/main.ts` as systemd runs it, driving a Firmata board on a pty (the board emulator at
 * the other end): when the board goes away while the terminal runs, the process says so in one
 * structured fatal line (ACTUATOR_LINK_LOST) and exits 69, which the unit restarts — instead of
 * running on with writes queued for ever on a closed port.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, issueTerminalCertificate, toHex } from '../../protocol/index.ts';
import { isSocatAvailable } from '../../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedFirmataBoard } from '../../simulators/virtual-io/firmata-board-emulator.ts';

const dir = mkdtempSync(join(tmpdir(), 'tapsettle-board-lost-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeTerminalFiles(boardPath: string): string {
  const hub = generateKeyPair();
  const terminal = generateKeyPair();
  const now = Date.now();
  const certificate = issueTerminalCertificate(hub, {
    terminalId: 'vend-1', merchantId: 'kiosk', kind: 'vending', publicKey: toHex(terminal.publicKey), notBefore: now - 60_000, notAfter: now + 365 * 24 * 3600_000,
  });
  writeFileSync(join(dir, 'terminal.key'), `${toHex(terminal.secretKey)}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'terminal.cert.json'), JSON.stringify(certificate));
  const config = join(dir, 'terminal.json');
  writeFileSync(config, JSON.stringify({
    terminalId: 'vend-1', kind: 'vending', merchantId: 'kiosk', dataDir: 'state', keyFile: 'terminal.key', certificateFile: 'terminal.cert.json',
    // Nothing listens on port 1: the terminal runs offline, which is all this test needs.
    hub: { url: 'mqtt://127.0.0.1:1', hubKey: toHex(hub.publicKey), issuerKeys: [toHex(hub.publicKey)] },
    nfc: { kind: 'emulated' },
    io: { kind: 'johnny-five', port: boardPath, vending: { motorPins: [4, 7], drop: { pin: 12, activeLevel: 1 } } },
    log: { level: 'info' },
  }));
  return config;
}

describe.skipIf(!isSocatAvailable())('terminal process: the Firmata board is unplugged while it runs', () => {
  it('logs ACTUATOR_LINK_LOST at fatal and exits 69 (restarted by the unit)', async () => {
    const board = await startEmulatedFirmataBoard();
    try {
      const config = writeTerminalFiles(board.path);
      const child = spawn(process.execPath, ['--import', 'tsx', 'terminal/main.ts', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const killer = setTimeout(() => child.kill('SIGKILL'), 40_000);
      try {
        const deadline = Date.now() + 30_000;
        while (!stdout.includes('terminal started')) {
          if (Date.now() > deadline || child.exitCode !== null) throw new Error(`terminal did not start:\n${stdout}\n${stderr}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const t0 = Date.now();
        await board.close(); // the Arduino's USB cable pulled
        const code = await exited;
        expect(code, `${stdout}\n${stderr}`).toBe(69);
        expect(Date.now() - t0).toBeLessThan(10_000);
        const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; code?: string; exitCode?: number; terminalId?: string });
        expect(lines.filter((l) => l.level === 60)).toEqual([expect.objectContaining({ code: 'ACTUATOR_LINK_LOST', exitCode: 69, terminalId: 'vend-1' })]);
        expect(stderr).not.toMatch(/Unhandled|uncaught/i);
      } finally {
        clearTimeout(killer);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    } finally {
      await board.close();
    }
  }, 60_000);
});
