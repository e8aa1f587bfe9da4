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
import { EXIT_BAD_INPUT, EXIT_REFUSED } from '../cli/exit-codes.ts';

export const ADMIN_SOCKET_FILE = 'admin.sock';
export const MAX_ADMIN_REQUEST_BYTES = 64 * 1024;
/** Linux's sun_path holds 108 bytes with the terminating NUL; a longer path cannot be bound. */
const MAX_SOCKET_PATH_BYTES = 107;
const MAX_ARGS = 64;
const MAX_ARG_CHARS = 8192;

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

/** Global options that take a value (their value is no command word). */
const VALUED_GLOBAL_OPTIONS = new Set(['--data-dir']);
/** Commands whose second word is a subcommand (the others' second word is a value). */
const COMMAND_GROUPS = new Set(['blocklist']);

/** The command of a command line, for the log: never its values (a wallet, a name, an identity). */
export function commandOf(argv: readonly string[]): string {
  const words: string[] = [];
  for (let i = 2; i < argv.length && words.length < 2; i++) {
    const a = argv[i]!;
    if (a.startsWith('-')) {
      if (words.length === 0 && VALUED_GLOBAL_OPTIONS.has(a)) i++;
      if (words.length > 0) break;
      continue;
    }
    if (words.length === 1 && !COMMAND_GROUPS.has(words[0]!)) break;
    words.push(a);
  }
  return words.join(' ');
}

const REQUEST_TIMEOUT_MS = 10_000;
const MAX_CONNECTIONS = 16;

function badRequest(message: string): AdminReply {
  return { stdout: '', stderr: `error: invalid admin request: ${message}\n`, exitCode: EXIT_BAD_INPUT };
}

/**
 * Listens on `<dataDir>/admin.sock` (a stale one, left by a hub that died, is replaced: the caller
 * holds the data folder's lock). Resolves undefined, with a warning, when it cannot (a path too
 * long to bind, a file system without sockets): the hub runs, and the CLI then refuses while it
 * holds the folder, as before.
 */
export async function startAdminServer(o: { dataDir: string; run: AdminRunner; logger: Logger }): Promise<AdminServer | undefined> {
  const path = adminSocketPath(o.dataDir);
  if (!bindable(path)) {
    o.logger.warn({ path }, 'admin channel off: socket path too long to bind (use a shorter data folder); the CLI cannot reach this hub while it runs');
    return undefined;
  }
  const sockets = new Set<net.Socket>();
  const running = new Set<Promise<void>>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy());
    const chunks: Buffer[] = [];
    let bytes = 0;
    let taken = false;
    const answer = (reply: AdminReply) => socket.end(`${JSON.stringify(reply)}\n`);
    const take = (line: Buffer | undefined) => {
      taken = true;
      socket.off('data', onData);
      socket.setTimeout(0); // a command may take its time; the request has arrived
      if (line === undefined) return answer(badRequest(bytes > MAX_ADMIN_REQUEST_BYTES ? `larger than ${MAX_ADMIN_REQUEST_BYTES} bytes` : 'no request line'));
      const parsed = parseAdminRequest(line.toString('utf8'));
      if (!parsed.ok) {
        o.logger.warn({ reason: parsed.message }, 'admin channel: invalid request refused');
        return answer(badRequest(parsed.message));
      }
      const command = commandOf(parsed.request.argv);
      const done = o.run(parsed.request).then(
        (reply) => {
          o.logger.info({ command, exitCode: reply.exitCode }, 'admin command');
          answer(reply);
        },
        (err: unknown) => {
          o.logger.error({ err, command }, 'admin command failed');
          answer({ stdout: '', stderr: `error: ${(err as Error).message}\n`, exitCode: EXIT_REFUSED });
        },
      );
      running.add(done);
      void done.finally(() => running.delete(done));
    };
    // Bytes until the first newline: a character split across reads is decoded whole.
    const onData = (chunk: Buffer) => {
      const newline = chunk.indexOf(0x0a);
      const end = newline < 0 ? chunk.length : newline;
      chunks.push(chunk.subarray(0, end));
      bytes += end;
      if (bytes > MAX_ADMIN_REQUEST_BYTES) return take(undefined);
      if (newline >= 0) take(Buffer.concat(chunks));
    };
    socket.on('data', onData);
    socket.on('end', () => {
      if (!taken) take(undefined);
    });
  });
  server.maxConnections = MAX_CONNECTIONS;
  try {
    rmSync(path, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Bound owner-only from the start (the umask applies to the socket file); chmod to be sure.
      const umask = process.umask(0o077);
      try {
        server.listen(path, () => resolve());
      } finally {
        process.umask(umask);
      }
    });
    chmodSync(path, 0o600);
  } catch (err) {
    o.logger.warn({ err, path }, 'admin channel off: cannot listen on its socket; the CLI cannot reach this hub while it runs');
    server.close();
    return undefined;
  }
  return {
    path,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Commands already running finish and answer: their operator must learn what happened.
      await Promise.allSettled([...running]);
      for (const s of sockets) s.destroy();
      await closed;
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
    const chunks: Buffer[] = [];
    const socket = net.connect(path, () => {
      connected = true;
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`the running hub did not answer within ${timeoutMs / 1000} s; the command may still take effect: check before retrying`)),
    );
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) resolve(undefined);
      else reject(new Error(`admin channel ${path}: ${err.code ?? err.message}`));
    });
    socket.on('end', () => {
      try {
        const reply = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AdminReply;
        if (typeof reply.stdout !== 'string' || typeof reply.stderr !== 'string' || !Number.isInteger(reply.exitCode)) throw new Error('bad reply');
        resolve(reply);
      } catch {
        reject(new Error(`admin channel ${path}: the hub's answer is not a reply (it may have stopped mid-command: check before retrying)`));
      }
    });
  });
}
