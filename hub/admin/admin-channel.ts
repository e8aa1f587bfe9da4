/**
 * The running hub's admin channel: a Unix socket in its data folder (`admin.sock`; the folder is
 * 0700 and the socket 0600, so the file system is the authentication, as for PostgreSQL's local
 * socket). The operator CLI finds a running hub there and sends it its command line; the hub runs
 * that with the same CLI code against its live state (a blocklisting is announced at once, a
 * revoked terminal's session closed) and answers with what the CLI would have printed and its exit
 * code. Without it an operator would have to stop the hub to blocklist a stolen wallet.
 *
 * One request per connection: a JSON line `{ "v": 1, "argv": [...], "cwd": "/abs" }`, answered by
 * a JSON line `{ "stdout", "stderr", "exitCode" }`.
 */
import { chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import { isAbsolute, join } from 'node:path';
import type { Logger } from 'pino';

export const ADMIN_SOCKET_FILE = 'admin.sock';
export const MAX_ADMIN_REQUEST_BYTES = 64 * 1024;
/** Linux's sun_path holds 108 bytes with the terminating NUL; a longer path cannot be bound. */
const MAX_SOCKET_PATH_BYTES = 107;
const MAX_ARGS = 64;
const MAX_ARG_CHARS = 8192;
const EXIT_BAD_INPUT = 2;

export interface AdminRequest {
  readonly v: 1;
  /** The CLI's argv as it got it (node, script, command, options…). */
  readonly argv: readonly string[];
  /** The operator's working directory: relative file arguments resolve against it. */
  readonly cwd: string;
}

export interface AdminReply {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

export type AdminRunner = (request: AdminRequest) => Promise<AdminReply>;

export interface AdminServer {
  readonly path: string;
  close(): Promise<void>;
}

export function adminSocketPath(dataDir: string): string {
  return join(dataDir, ADMIN_SOCKET_FILE);
}

function bindable(path: string): boolean {
  return Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES;
}

/** The request, or why it is not one. */
export function parseAdminRequest(line: string): { ok: true; request: AdminRequest } | { ok: false; message: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return { ok: false, message: 'not JSON' };
  }
  const r = raw as Partial<Record<keyof AdminRequest, unknown>> | null;
  if (r === null || typeof r !== 'object' || r.v !== 1) return { ok: false, message: 'expected { "v": 1, "argv", "cwd" }' };
  if (!Array.isArray(r.argv) || r.argv.length > MAX_ARGS || !r.argv.every((a) => typeof a === 'string' && a.length <= MAX_ARG_CHARS)) {
    return { ok: false, message: `argv: expected at most ${MAX_ARGS} strings of at most ${MAX_ARG_CHARS} chars` };
  }
  if (typeof r.cwd !== 'string' || !isAbsolute(r.cwd)) return { ok: false, message: 'cwd: expected an absolute path' };
  return { ok: true, request: { v: 1, argv: r.argv as string[], cwd: r.cwd } };
}

/** The subcommand words of a command line, for the log: never its values (a name, an identity). */
function commandOf(argv: readonly string[]): string {
  const words: string[] = [];
  for (const a of argv.slice(2)) {
    if (a.startsWith('-') || words.length === 2) break;
    words.push(a);
  }
  return words.join(' ');
}

/**
 * Listens on `<dataDir>/admin.sock` (a stale one, left by a hub that died, is replaced: the caller
 * holds the data folder's lock). Resolves undefined, with a warning, when the path is too long to
 * bind: the hub runs, and the CLI then refuses while it holds the folder, as before.
 */
export async function startAdminServer(o: { dataDir: string; run: AdminRunner; logger: Logger }): Promise<AdminServer | undefined> {
  const path = adminSocketPath(o.dataDir);
  if (!bindable(path)) {
    o.logger.warn({ path }, 'admin channel off: socket path too long to bind (use a shorter data folder); the CLI cannot reach this hub while it runs');
    return undefined;
  }
  rmSync(path, { force: true });
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = '';
    const answer = (reply: AdminReply) => socket.end(`${JSON.stringify(reply)}\n`);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline < 0 && buffered.length <= MAX_ADMIN_REQUEST_BYTES) return;
      socket.off('data', onData);
      if (newline < 0 || newline > MAX_ADMIN_REQUEST_BYTES) {
        answer({ stdout: '', stderr: `error: invalid admin request: larger than ${MAX_ADMIN_REQUEST_BYTES} bytes\n`, exitCode: EXIT_BAD_INPUT });
        return;
      }
      const parsed = parseAdminRequest(buffered.slice(0, newline));
      if (!parsed.ok) {
        o.logger.warn({ reason: parsed.message }, 'admin channel: invalid request refused');
        answer({ stdout: '', stderr: `error: invalid admin request: ${parsed.message}\n`, exitCode: EXIT_BAD_INPUT });
        return;
      }
      const command = commandOf(parsed.request.argv);
      o.run(parsed.request).then(
        (reply) => {
          o.logger.info({ command, exitCode: reply.exitCode }, 'admin command');
          answer(reply);
        },
        (err: unknown) => {
          o.logger.error({ err, command }, 'admin command failed');
          answer({ stdout: '', stderr: `error: ${(err as Error).message}\n`, exitCode: 1 });
        },
      );
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return {
    path,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      rmSync(path, { force: true });
    },
  };
}

/**
 * Sends a command line to the hub running on `dataDir`. Resolves undefined when none listens there
 * (no socket, or one a stopped hub left); throws when one listens but cannot be used.
 */
export function sendAdminRequest(dataDir: string, request: AdminRequest, timeoutMs = 120_000): Promise<AdminReply | undefined> {
  const path = adminSocketPath(dataDir);
  if (!bindable(path)) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    let connected = false;
    let received = '';
    const socket = net.connect(path, () => {
      connected = true;
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`the running hub did not answer within ${timeoutMs / 1000} s`)));
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) resolve(undefined);
      else reject(new Error(`admin channel ${path}: ${err.code ?? err.message}`));
    });
    socket.on('end', () => {
      try {
        const reply = JSON.parse(received) as AdminReply;
        if (typeof reply.stdout !== 'string' || typeof reply.stderr !== 'string' || !Number.isInteger(reply.exitCode)) throw new Error('bad reply');
        resolve(reply);
      } catch {
        reject(new Error(`admin channel ${path}: the hub's answer is not a reply`));
      }
    });
  });
}
