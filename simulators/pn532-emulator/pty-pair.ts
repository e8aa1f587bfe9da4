// A linked pseudo-terminal pair made by socat, so both ends can be opened with `serialport`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export function isSocatAvailable(): boolean {
  const r = spawnSync('socat', ['-V'], { stdio: 'ignore' });
  return r.status === 0;
}

export type PtyPair = {
  /** Path the emulator opens (the PN532 side). */
  readonly devicePath: string;
  /** Path the driver opens (the host side). */
  readonly hostPath: string;
  close(): Promise<void>;
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const WATCHDOG = `
socat -d -d "pty,raw,echo=0,link=$2" "pty,raw,echo=0,link=$3" &
S=$!
trap 'kill $S 2>/dev/null; wait $S; exit 0' TERM INT
while kill -0 "$1" 2>/dev/null && kill -0 $S 2>/dev/null; do sleep 0.5 & wait $!; done
kill $S 2>/dev/null
wait $S
`;

/** Spawn `socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B` and wait until both links exist. */
export async function openPtyPair(devicePath: string, hostPath: string, timeoutMs = 5000): Promise<PtyPair> {
  // socat runs under a small sh watchdog that stops it when this process is gone, even after a
  // SIGKILL (no orphaned socat holding ptys after a crashed test run). In a process group of its
  // own (detached): a Ctrl-C or a SIGTERM sent to this process's group (a terminal, `npm start`,
  // `timeout`) reaches this process, which closes its reader first and then the pair; had it
  // reached socat too, the reader's line would die mid-close and be logged as an unplugged reader.
  const child: ChildProcess = spawn('sh', ['-c', WATCHDOG, 'pty-pair', String(process.pid), devicePath, hostPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  const deadline = Date.now() + timeoutMs;
  // socat logs "starting data transfer loop" once both ptys exist and links are made.
  while (!(existsSync(devicePath) && existsSync(hostPath) && stderr.includes('starting data transfer loop'))) {
    if (exited) throw new Error(`socat exited early: ${stderr.trim()}`);
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`socat did not create ${devicePath} and ${hostPath} within ${timeoutMs} ms`);
    }
    await sleep(10);
  }
  return {
    devicePath,
    hostPath,
    async close() {
      if (!exited) {
        child.kill('SIGTERM');
        await exitedPromise;
      }
    },
  };
}
