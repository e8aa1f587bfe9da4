// One call to get a PN532 emulator on a pseudo-terminal, ready for Pn532NfcReader.open({ path }).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pn532Emulator, type Pn532EmulatorOptions } from './pn532-emulator.ts';
import { openPtyPair, type PtyPair } from './pty-pair.ts';

export type EmulatedReader = {
  /** The serial path the driver opens (host side of the pty pair). */
  readonly path: string;
  readonly emulator: Pn532Emulator;
  /** Simulate pulling the USB adapter: the emulator side and the pty pair vanish. */
  unplug(): Promise<void>;
  /** Plug it back: a new pty pair at the same paths, the emulator reopened (cards kept). */
  plug(): Promise<void>;
  close(): Promise<void>;
};

export async function startEmulatedReader(options: Omit<Pn532EmulatorOptions, 'path'> & { dir?: string } = {}): Promise<EmulatedReader> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tapsettle-pn532-'));
  const devicePath = join(dir, 'pn532-device');
  const hostPath = join(dir, 'pn532-host');
  let pair: PtyPair | undefined = await openPtyPair(devicePath, hostPath);
  const emulator = new Pn532Emulator({ ...options, path: devicePath });
  try {
    await emulator.open();
  } catch (err) {
    await pair.close();
    throw err;
  }
  return {
    path: hostPath,
    emulator,
    async unplug() {
      await emulator.close();
      await pair?.close();
      pair = undefined;
    },
    async plug() {
      if (pair !== undefined) return;
      pair = await openPtyPair(devicePath, hostPath);
      await emulator.open();
    },
    async close() {
      await emulator.close();
      await pair?.close();
      pair = undefined;
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
