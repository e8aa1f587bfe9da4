// openHardware on the emulated PN532 and the virtual board: an unplugged reader is logged.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isSocatAvailable } from '../simulators/pn532-emulator/pty-pair.ts';
import { parseConfig } from './config.ts';
import { openHardware, type OpenedHardware } from './devices.ts';

const KEY = 'a'.repeat(64);

function memoryLog(): { log: pino.Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('waitFor: condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(!isSocatAvailable())('openHardware (emulated PN532, virtual board)', () => {
  let hardware: OpenedHardware | undefined;
  afterEach(async () => {
    await hardware?.close();
    hardware = undefined;
  });

  it('logs an unplugged NFC reader at error and its return at info', async () => {
    const config = parseConfig({
      terminalId: 'gate-3', kind: 'gate', merchantId: 'transit', dataDir: 'state', keyFile: 'terminal.key', certificateFile: 'terminal.cert.json',
      hub: { url: 'mqtt://hub.local:1883', hubKey: KEY, issuerKeys: [KEY] },
      nfc: { kind: 'emulated' }, io: { kind: 'virtual' }, gate: { station: 'north', mode: 'entry' },
    }, '/tmp', {});
    const { log, lines } = memoryLog();
    hardware = await openHardware(config, log);
    const emulated = hardware.sim.emulator!;
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);

    await emulated.unplug();
    await waitFor(() => lines.some((l) => l.level === 50 && /NFC reader disconnected/.test(l.msg)));
    await emulated.plug();
    await waitFor(() => lines.some((l) => l.level === 30 && /NFC reader reconnected/.test(l.msg)));
  });
});
