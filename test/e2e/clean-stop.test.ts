/**
 * A deliberate stop logs no error. A Ctrl-C reaches the whole foreground process group (and a
 * SIGTERM from `timeout` or `kill %1` the job's): the emulated PN532's socat was in that group,
 * died with the signal while the terminals were closing, and each terminal logged a level-50 "NFC
 * reader disconnected" with a stack trace. An unplugged reader is still an error
 * (terminal/devices.test.ts). And every terminal log line names its terminal once: the runtime's
 * child logger bound `terminalId` again over the start's, and the JSON line carried the key twice.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../protocol/index.ts';
import { freePort } from '../../hub/mqtt/mosquitto-process.ts';
import { createHub } from '../../hub/service/hub.ts';
import { isSocatAvailable } from '../../simulators/pn532-emulator/pty-pair.ts';
import { spawnTs, type Spawned } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tapsettle-clean-stop-'));
const spawned: Spawned[] = [];
afterAll(() => {
  for (const p of spawned) if (p.child.exitCode === null && p.child.signalCode === null) process.kill(-p.child.pid!, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface LogLine {
  readonly raw: string;
  readonly level: number;
  readonly msg: string;
  readonly terminalId?: string;
}

/** The JSON log lines of a stream (other lines, such as the banner, are skipped). */
function logLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((raw) => ({ raw, ...(JSON.parse(raw) as Omit<LogLine, 'raw'>) }));
}

const keyCount = (raw: string, key: string): number => raw.split(`"${key}":`).length - 1;

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!isSocatAvailable())('a deliberate stop of emulated terminals', () => {
  it('npm start: a Ctrl-C to its process group stops the demo terminals without an error, each line naming its terminal once', async () => {
    const p = spawnTs('bin/start.ts', ['--data-dir', join(dir, 'demo'), '--port', '0', '--no-customers', '--log-level', 'info'], { detached: true });
    spawned.push(p);
    await p.waitFor(/Press Ctrl-C/, 60_000);
    // The four runtime terminals are up: their own lines (the runtime's) and the start's.
    await until(() => new Set(logLines(p.stderr()).filter((l) => l.msg === 'hub reachable').map((l) => l.terminalId)).size === 4, 30_000, 'four terminals online');

    process.kill(-p.child.pid!, 'SIGINT');
    expect(await p.exited()).toBe(0);
    expect(p.stdout()).toContain('tapsettle stopped cleanly.');

    const lines = logLines(p.stderr());
    expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
    const terminalLines = lines.filter((l) => l.raw.includes('"terminalId":'));
    expect(terminalLines.some((l) => l.msg === 'terminal started')).toBe(true);
    expect(terminalLines.some((l) => l.msg === 'hub reachable')).toBe(true);
    for (const l of terminalLines) expect(keyCount(l.raw, 'terminalId'), l.raw).toBe(1);
  }, 120_000);

  it('terminal/main.ts: a SIGTERM to its process group exits 0 with no error; its lines name the terminal once', async () => {
    const hubDir = join(dir, 'hub');
    const hub = await createHub({ dataDir: hubDir, logger: pino({ level: 'silent' }), holdReleaseIntervalMs: 0 });
    let config: string;
    try {
      const enrolled = await hub.enrollTerminal({ terminalId: 'pos-stop', kind: 'pos', merchantId: 'shop.stop' });
      const keyFile = join(dir, 'terminal.key');
      const certificateFile = join(dir, 'terminal.cert.json');
      writeFileSync(keyFile, `${toHex(enrolled.keyPair!.secretKey)}\n`, { mode: 0o600 });
      writeFileSync(certificateFile, JSON.stringify(enrolled.certificate));
      config = join(dir, 'terminal.json');
      writeFileSync(
        config,
        JSON.stringify({
          terminalId: 'pos-stop', kind: 'pos', merchantId: 'shop.stop', dataDir: join(dir, 'state'), keyFile, certificateFile,
          // No broker there: the runtime's hub client logs its connection errors (a line of the runtime's).
          hub: { url: `mqtt://127.0.0.1:${await freePort()}`, hubKey: hub.trustAnchorKey, issuerKeys: [hub.issuerPublicKey] },
          nfc: { kind: 'emulated' }, io: { kind: 'virtual' }, log: { level: 'info' },
        }),
      );
    } finally {
      await hub.close();
    }

    const p = spawnTs('terminal/main.ts', ['--config', config], { detached: true });
    spawned.push(p);
    await p.waitFor(/"msg":"hub: connection error"/, 30_000);
    process.kill(-p.child.pid!, 'SIGTERM');
    expect(await p.exited()).toBe(0);

    const lines = logLines(p.stdout() + p.stderr());
    expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
    const started = lines.find((l) => l.msg === 'terminal started')!;
    const runtimeLine = lines.find((l) => l.msg === 'hub: connection error')!;
    for (const l of [started, runtimeLine]) {
      expect(l.terminalId).toBe('pos-stop');
      expect(keyCount(l.raw, 'terminalId'), l.raw).toBe(1);
    }
    for (const l of lines) expect(keyCount(l.raw, 'terminalId'), l.raw).toBe(1);
  }, 60_000);
});
