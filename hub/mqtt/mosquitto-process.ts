/**
 * Starts and stops a Mosquitto process on a generated config (tests, benchmarks, `.ci/run`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';

export function mosquittoAvailable(binary = 'mosquitto'): boolean {
  const probe = spawnSync(binary, ['-h'], { stdio: 'ignore' });
  return probe.error === undefined;
}

/** A port nothing listens on right now (bind to 0, read it, release it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForPort(port: number, host: string, timeoutMs: number, child: ChildProcess): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with code ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() - start > timeoutMs) throw new Error(`mosquitto: port ${port} not open after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface MosquittoProcess {
  readonly child: ChildProcess;
  /** Re-read the password and ACL files ([mosquitto.conf(5)] SIGHUP). */
  reload(): void;
  stop(): Promise<void>;
}

export async function startMosquitto(configPath: string, port: number, host = '127.0.0.1', binary = 'mosquitto'): Promise<MosquittoProcess> {
  const child = spawn(binary, ['-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  try {
    await waitForPort(port, host, 5000, child);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; stderr: ${stderr}`);
  }
  return {
    child,
    reload: () => void child.kill('SIGHUP'),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      }),
  };
}
