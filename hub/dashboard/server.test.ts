import http from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FixtureSource } from './fixture-source.ts';
import { startDashboard, type Dashboard } from './server.ts';
import type { DashboardSnapshot } from './types.ts';

let dash: Dashboard | undefined;
afterEach(async () => {
  await dash?.close();
  dash = undefined;
});

function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** Reads SSE snapshot frames until `until` accepts one. */
async function readSnapshots(url: string, until: (s: DashboardSnapshot) => boolean, onFirst?: () => void): Promise<DashboardSnapshot> {
  const res = await fetch(url);
  expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
  const reader = res.body!.getReader();
  let buffer = '';
  let first = true;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      buffer += Buffer.from(value).toString('utf8');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (!frame.startsWith('event: snapshot') || data === undefined) continue;
        const snap = JSON.parse(data) as DashboardSnapshot;
        if (first) {
          first = false;
          onFirst?.();
        }
        if (until(snap)) return snap;
      }
    }
  } finally {
    await reader.cancel();
  }
}

describe('dashboard server', () => {
  it('serves the page with a strict CSP and the snapshot as JSON', async () => {
    const source = new FixtureSource();
    source.settle({ requestId: 'a'.repeat(32), terminalId: 'pos-1', status: 'approved', amountMinor: 250 });
    dash = await startDashboard({ source });
    expect(dash.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await fetch(dash.url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<script src="/app.js" defer></script>');
    expect(html).not.toMatch(/<script>[^<]/); // no inline script
    expect((await fetch(new URL('app.js', dash.url))).headers.get('content-type')).toMatch(/javascript/);
    const snap = (await (await fetch(new URL('api/snapshot', dash.url))).json()) as DashboardSnapshot;
    expect(snap.throughput.totalSettled).toBe(1);
    expect(snap.settlements[0]?.terminalId).toBe('pos-1');
  });

  it('answers account look-ups and validates the id', async () => {
    const source = new FixtureSource();
    source.accounts.set('shop-1', { id: 'shop-1', kind: 'merchant', balanceMinor: 1200, currency: 'EUR', flagged: false, blocklisted: false, history: [] });
    dash = await startDashboard({ source });
    const ok = await fetch(new URL('api/account?id=shop-1', dash.url));
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { balanceMinor: number }).balanceMinor).toBe(1200);
    expect((await fetch(new URL('api/account?id=nobody', dash.url))).status).toBe(404);
    expect((await fetch(new URL('api/account?id=', dash.url))).status).toBe(400);
    expect((await fetch(new URL(`api/account?id=${'x'.repeat(200)}`, dash.url))).status).toBe(400);
  });

  it('is read-only and refuses foreign Host headers', async () => {
    dash = await startDashboard({ source: new FixtureSource() });
    expect((await fetch(new URL('api/snapshot', dash.url), { method: 'POST' })).status).toBe(405);
    expect((await fetch(new URL('nope', dash.url))).status).toBe(404);
    const rebinding = await rawGet(new URL('api/snapshot', dash.url).toString(), { host: 'evil.example:80' });
    expect(rebinding.status).toBe(421);
  });

  it('pushes a fresh snapshot over SSE when a settlement happens', async () => {
    const source = new FixtureSource();
    dash = await startDashboard({ source, pushIntervalMs: 60_000, minPushGapMs: 10 });
    const snap = await readSnapshots(
      new URL('events', dash.url).toString(),
      (s) => s.throughput.totalSettled === 1,
      () => source.settle({ requestId: 'b'.repeat(32), terminalId: 'gate-1', status: 'approved', amountMinor: 180, kind: 'fare' }),
    );
    expect(snap.settlements[0]).toMatchObject({ terminalId: 'gate-1', kind: 'fare', amountMinor: 180 });
  });

  it('closes open event streams on close()', async () => {
    dash = await startDashboard({ source: new FixtureSource() });
    const res = await fetch(new URL('events', dash.url));
    const reader = res.body!.getReader();
    await reader.read();
    await dash.close();
    // Drain: the server ended the stream, so the reader finishes.
    for (;;) if ((await reader.read()).done) break;
    dash = undefined;
  });

  it('says where it is bound: beyond loopback it warns (no authentication) and its URL names the address', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) }));
    dash = await startDashboard({ source: new FixtureSource(), logger });
    expect(lines).toEqual([]);
    await dash.close();

    dash = await startDashboard({ source: new FixtureSource(), host: '0.0.0.0', logger });
    expect(dash.url).toBe(`http://0.0.0.0:${dash.port}/`);
    expect(dash.host).toBe('0.0.0.0');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, host: '0.0.0.0', port: dash.port, msg: expect.stringMatching(/no authentication.*reverse proxy/) });
  });

  it('on a loopback address other than 127.0.0.1 it still refuses foreign Host headers', async () => {
    dash = await startDashboard({ source: new FixtureSource(), host: '127.0.0.2' });
    expect(dash.url).toBe(`http://127.0.0.2:${dash.port}/`);
    expect((await fetch(new URL('api/snapshot', dash.url))).status).toBe(200);
    expect((await rawGet(new URL('api/snapshot', dash.url).toString(), { host: 'evil.example' })).status).toBe(421);
  });
});
