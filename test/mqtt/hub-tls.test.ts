/** The embedded broker over TLS (issue 4: "TLS when given a key and certificate"). */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAndVerify } from '../../protocol/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { inlineVerifier } from '../../hub/verify/verifier.ts';
import { connectTerminal } from '../../simulators/load/terminal-client.ts';
import { MemoryDirectory, TestSettlementHandler, captureLogger, makeTerminal, purchase, purchaseParty } from './fixtures.ts';

const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).error === undefined;
if (!hasOpenssl) console.warn('test/mqtt/hub-tls: SKIPPED — no `openssl` binary to make a test certificate');

describe.skipIf(!hasOpenssl)('embedded broker over TLS', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-tls-'));
  const directory = new MemoryDirectory();
  const terminal = makeTerminal('pos-tls');
  directory.add(terminal);
  const handler = new TestSettlementHandler(directory, inlineVerifier);
  let hub: HubServer;
  let cert: Buffer;

  beforeAll(async () => {
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'pipe' });
    if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
    cert = readFileSync(certFile);
    hub = await createHubServer({ service: handler, directory, logger: captureLogger().logger, tls: { key: readFileSync(keyFile), cert } });
  });
  afterAll(async () => {
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves mqtts:// and answers a signed request', async () => {
    expect(hub.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const c = await connectTerminal({ url: hub.url, terminalId: terminal.terminalId, secretKey: terminal.keys.secretKey, tls: { ca: cert } });
    try {
      const req = purchase(purchaseParty(terminal));
      const reply = decodeAndVerify(await c.request(req.bytes, req.requestId), 'settlement.result', handler.hubKeyHex);
      expect(reply.ok && reply.value.body.status).toBe('approved');
    } finally {
      await c.close();
    }
  });

  it('a client that does not trust the certificate cannot connect', async () => {
    await expect(connectTerminal({ url: hub.url, terminalId: terminal.terminalId, secretKey: terminal.keys.secretKey, reconnectPeriodMs: 0 })).rejects.toThrow(/self[- ]signed|certificate/i);
  });
});
