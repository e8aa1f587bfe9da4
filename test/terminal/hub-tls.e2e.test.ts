// A terminal on the hub's embedded broker over TLS (mqtts://), as docs/examples/hub.json and
// docs/examples/terminal-gate.json set it up: the real hub (createHub, SQLite ledger), the
// embedded aedes broker serving TLS on port 0, and the real terminal runtime (config → startTerminal,
// PN532 emulator on a pty, virtual IO) with `hub.caFile`. It connects, verifies the broker's
// certificate against that CA and gets a purchase settled; with another CA, or with Node's
// default CAs, the certificate is refused and the terminal stays offline.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordKind } from '../../hardware/wallet-apdu/apdu.ts';
import { createHub, type Hub } from '../../hub/service/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { startSimulatedTerminal, type SimulatedTerminal } from '../../simulators/site/start-simulated-terminal.ts';
import { SimulatedWallet } from '../../simulators/wallet/simulated-wallet.ts';
import { ARTICLES, eventually, OPERATORS } from './harness.ts';

const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).error === undefined;
if (!hasOpenssl) console.warn('test/terminal/hub-tls: SKIPPED — no `openssl` binary to make a test certificate');

/** A self-signed P-256 certificate for localhost / 127.0.0.1 (its own CA), as PEM files. */
function makeCert(dir: string, name: string): { keyFile: string; certFile: string } {
  const keyFile = join(dir, `${name}.key.pem`);
  const certFile = join(dir, `${name}.cert.pem`);
  const made = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
    { stdio: 'pipe' },
  );
  if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
  return { keyFile, certFile };
}

/** A warn-level logger whose lines the test can read (the hub client logs connection errors). */
function capturingLog(): { log: Logger; lines: () => Array<{ msg: string; err?: string; retryInMs?: number }> } {
  const out: string[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void out.push(s) });
  return { log, lines: () => out.map((s) => JSON.parse(s) as { msg: string; err?: string; retryInMs?: number }) };
}

describe.skipIf(!hasOpenssl)('terminal ↔ hub over TLS (mqtts://, hub.caFile)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-terminal-tls-'));
  let hub: Hub;
  let server: HubServer;
  let hubCert: { keyFile: string; certFile: string };
  let otherCa: { keyFile: string; certFile: string };
  const terminals: SimulatedTerminal[] = [];

  beforeAll(async () => {
    hubCert = makeCert(dir, 'hub-mqtt');
    // Same subject and names, another key: only the chain to the configured CA can tell them apart.
    otherCa = makeCert(dir, 'other-ca');
    hub = await createHub({ dataDir: join(dir, 'hub'), holdReleaseIntervalMs: 0 });
    hub.importCatalog({ merchantId: 'merchant-pos', articles: ARTICLES });
    server = await createHubServer({
      service: hub,
      directory: hub,
      logger: pino({ level: 'silent' }),
      tls: { key: readFileSync(hubCert.keyFile), cert: readFileSync(hubCert.certFile) },
    });
  });
  afterAll(async () => {
    for (const t of terminals.splice(0)) await t.close().catch(() => undefined);
    await server?.close();
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function terminal(caFile: string | undefined, log?: Logger): Promise<SimulatedTerminal> {
    const t = await startSimulatedTerminal({
      kind: 'pos',
      merchantId: 'merchant-pos',
      hubUrl: server.url,
      hub,
      config: { pos: { operators: OPERATORS }, hub: { timeoutMs: 3000, retryMs: 300, reconnectPeriodMs: 100, ...(caFile !== undefined ? { caFile } : {}) } },
      ...(log ? { log } : {}),
    });
    terminals.push(t);
    return t;
  }

  it('with the hub certificate as hub.caFile: connects over mqtts and a POS sale is settled by the hub', async () => {
    expect(server.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const pos = await terminal(hubCert.certFile);
    expect(pos.config.hub.caFile).toBe(hubCert.certFile);
    // Online, and the hub's retained catalog announcement arrived over the TLS session.
    await eventually(() => pos.runtime.isOnline && pos.runtime.articles.length > 0, 10_000, 'terminal online over TLS with the catalog');

    const reg = await hub.registerWallet({ ageOver: 30, offlineLimitMinor: 1000 });
    if (!reg.keyPair) throw new Error('registerWallet returned no key pair');
    const wallet = new SimulatedWallet({ keys: reg.keyPair, license: reg.license, trustedHubKeys: [hub.trustAnchorKey] });
    await hub.topUp({ wallet: wallet.publicKeyHex, amountMinor: 1000, operatorId: 'setup' });

    const prints: string[][] = [];
    const settled: Array<[string, string]> = [];
    const commands: string[] = [];
    pos.runtime.on('print', (lines) => prints.push(lines));
    pos.runtime.on('settled', (requestId, status) => settled.push([requestId, status]));
    pos.runtime.on('command', (c) => commands.push(c.c));
    await pos.runtime.addItem('bread', 2);
    await pos.runtime.addItem('cola', 1);
    await pos.runtime.checkout();
    pos.tap(wallet);
    // Done with the card once the statement is on it and the card is released.
    await eventually(() => prints.length > 0 && commands.includes('nfc.release'), 10_000, 'sale done');
    pos.remove();

    // The hub-signed result came back over TLS and was verified (no OFFLINE receipt: online).
    expect(settled.map(([, status]) => status)).toEqual(['approved']);
    expect(prints[0]!.join('\n')).toContain('TOTAL 4.90 EUR');
    expect(prints[0]!.join('\n')).not.toMatch(/OFFLINE/);
    expect(wallet.applet.records.list(RecordKind.BalanceStatement)).toHaveLength(1);
    const account = await hub.showAccount(wallet.publicKeyHex);
    expect(account?.account.balanceMinor).toBe(510);
  });

  it('with another CA, or none (Node default CAs): the broker certificate is refused and the terminal stays offline', async () => {
    const wrong = capturingLog();
    const none = capturingLog();
    const [withOtherCa, withDefaultCas] = await Promise.all([terminal(otherCa.certFile, wrong.log), terminal(undefined, none.log)]);
    const refusals = (lines: () => Array<{ msg: string; err?: string; retryInMs?: number }>) =>
      lines().filter((l) => l.msg.startsWith("hub: the broker's certificate was refused") && /self[- ]signed|certificate/i.test(l.err ?? ''));
    // Each attempt fails the TLS handshake on the certificate, said as an error, and the next one
    // waits twice as long (from reconnectPeriodMs 100 ms): not a warning every 100 ms for hours.
    await eventually(() => refusals(wrong.lines).length >= 3 && refusals(none.lines).length >= 3, 10_000, 'certificate refusals logged');
    expect(refusals(wrong.lines).slice(0, 3).map((l) => l.retryInMs)).toEqual([200, 400, 800]);
    const seen = refusals(wrong.lines).length;
    await new Promise((r) => setTimeout(r, 1500));
    expect(refusals(wrong.lines).length - seen).toBeLessThanOrEqual(2); // at most the 1.6 s wait's attempt (15 at 100 ms)
    expect(withOtherCa.runtime.isOnline).toBe(false);
    expect(withDefaultCas.runtime.isOnline).toBe(false);
    // Never got as far as the hub: no announcement ever arrived.
    expect(withOtherCa.runtime.articles).toHaveLength(0);
    expect(withDefaultCas.runtime.articles).toHaveLength(0);
  });
});
