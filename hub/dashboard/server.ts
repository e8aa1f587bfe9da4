/**
 * The operator dashboard: one static page (vanilla JS/CSS, no build step), a JSON API and a
 * Server-Sent Events stream of snapshots. Read-only: GET only, nothing in the API changes state.
 * Binds 127.0.0.1 by default; on a loopback bind it also refuses foreign Host headers (DNS
 * rebinding). It has no authentication: bound beyond loopback it warns at start (put it behind an
 * authenticating reverse proxy). The page renders every value with textContent, and the CSP
 * forbids inline script.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { DashboardSource } from './types.ts';

export interface DashboardOptions {
  readonly source: DashboardSource;
  /** 0 = a free port (tests). Default 0. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** How often connected pages get a fresh snapshot. Default 1000 ms. */
  readonly pushIntervalMs?: number;
  /** A change notification is pushed at most this often. Default 250 ms. */
  readonly minPushGapMs?: number;
  /** Upper bound on open event streams. Default 64. */
  readonly maxStreams?: number;
  readonly onError?: (err: unknown) => void;
  /** Where the start-up warning of a bind beyond loopback goes. */
  readonly logger?: Pick<Logger, 'warn'>;
}

export interface Dashboard {
  /** The address actually bound: `http://0.0.0.0:PORT/` for every IPv4 interface, never a loopback URL in its place. */
  readonly url: string;
  /** The bound address (`0.0.0.0` / `::` = every interface). */
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

const PUBLIC_DIR = new URL('./public/', import.meta.url);
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);
/** An address only this machine reaches (as hub/mqtt/hub-server.ts decides for the broker). */
const isLoopback = (host: string): boolean => LOOPBACK_HOSTS.has(host) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
const MAX_ACCOUNT_ID_CHARS = 128;

export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const { source } = options;
  const host = options.host ?? '127.0.0.1';
  const pushIntervalMs = options.pushIntervalMs ?? 1000;
  const minPushGapMs = options.minPushGapMs ?? 250;
  const maxStreams = options.maxStreams ?? 64;
  const onError = options.onError ?? (() => {});
  const assets = new Map(Object.entries(ASSETS).map(([path, a]) => [path, { body: readFileSync(new URL(a.file, PUBLIC_DIR)), type: a.type }]));
  const streams = new Set<http.ServerResponse>();
  const loopbackOnly = isLoopback(host);

  const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer) => {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const sendJson = (res: http.ServerResponse, status: number, value: unknown) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));

  // One snapshot per push, shared by every open page.
  let pushing = false;
  let lastPushMs = 0;
  let pendingPush: NodeJS.Timeout | undefined;
  const push = async () => {
    if (pushing || streams.size === 0) return;
    pushing = true;
    try {
      const frame = `event: snapshot\ndata: ${JSON.stringify(await source.snapshot())}\n\n`;
      lastPushMs = Date.now();
      for (const res of streams) res.write(frame);
    } catch (err) {
      onError(err);
    } finally {
      pushing = false;
    }
  };
  const ticker = setInterval(() => void push(), pushIntervalMs);
  ticker.unref();
  const unsubscribe = source.subscribe?.(() => {
    if (pendingPush || streams.size === 0) return;
    const waitMs = Math.max(0, lastPushMs + minPushGapMs - Date.now());
    pendingPush = setTimeout(() => {
      pendingPush = undefined;
      void push();
    }, waitMs);
    pendingPush.unref();
  });

  const openStream = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (streams.size >= maxStreams) return sendJson(res, 503, { error: 'too many open event streams' });
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    res.socket?.setNoDelay(true);
    res.write('retry: 2000\n\n');
    streams.add(res);
    req.on('close', () => streams.delete(res));
    try {
      res.write(`event: snapshot\ndata: ${JSON.stringify(await source.snapshot())}\n\n`);
    } catch (err) {
      onError(err);
    }
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendJson(res, 405, { error: 'read-only: GET only' });
    }
    if (loopbackOnly) {
      const hostname = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (!LOOPBACK_HOSTS.has(hostname) && hostname !== host) return sendJson(res, 421, { error: 'unexpected Host header' });
    }
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    const asset = assets.get(url.pathname);
    if (asset) return send(res, 200, asset.type, asset.body);
    switch (url.pathname) {
      case '/api/snapshot':
        return sendJson(res, 200, await source.snapshot());
      case '/api/account': {
        const id = (url.searchParams.get('id') ?? '').trim();
        if (id.length === 0 || id.length > MAX_ACCOUNT_ID_CHARS) return sendJson(res, 400, { error: `id must be 1–${MAX_ACCOUNT_ID_CHARS} characters` });
        const account = await source.account(id);
        return account ? sendJson(res, 200, account) : sendJson(res, 404, { error: 'no such account' });
      }
      case '/events':
        return openStream(req, res);
      case '/healthz':
        return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      default:
        return sendJson(res, 404, { error: 'not found' });
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      onError(err);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const port = bound.port;
  const urlHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  if (!loopbackOnly) {
    // Balances, the blocklist and every account's history, to anyone who reaches the port.
    options.logger?.warn(
      { host: bound.address, port },
      'dashboard: bound beyond this machine and it has no authentication: anyone who reaches it reads balances, the blocklist and account histories; bind it to 127.0.0.1 (dashboard.host) and put it behind an authenticating reverse proxy',
    );
  }

  let closed = false;
  return {
    url: `http://${urlHost}:${port}/`,
    host: bound.address,
    port,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(ticker);
      if (pendingPush) clearTimeout(pendingPush);
      if (typeof unsubscribe === 'function') unsubscribe();
      for (const res of streams) res.end();
      streams.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
