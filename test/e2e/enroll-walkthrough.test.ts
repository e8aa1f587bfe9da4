/**
 * A terminal's enrollment as terminal/README.md (step 6) and the README ("Key and enrollment")
 * tell it, with the real CLIs: `terminal/main.ts --keygen`, `tapsettle enroll-terminal` (bin/tapsettle.js,
 * what `npx tapsettle` runs) redirected to a file, the `certificate` field extracted with the
 * documented `node -p` line, the hub and issuer keys taken from the same output (and from
 * `hub-keys`), then `--check` on a config holding them. The issuer key used to be printed only by
 * `register-wallet` (a throw-away wallet to learn it).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyWalletLicense, type Envelope } from '../../protocol/index.ts';
import { REPO_ROOT } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tapsettle-enroll-walkthrough-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const dataDir = join(dir, 'hub');

/** One run of a CLI from the install folder; stdout only (as a shell redirect keeps it). */
const run = (args: readonly string[], input?: string): string =>
  execFileSync(process.execPath, args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000, ...(input !== undefined ? { input } : {}) });
const tapsettle = (...args: string[]): string => run(['bin/tapsettle.js', ...args, '--data-dir', dataDir]);
// The two lines terminal/README.md step 6 gives, verbatim (minus the shell's redirects).
const EXTRACT_CERTIFICATE = 'JSON.stringify(JSON.parse(require("fs").readFileSync(0, "utf8")).certificate)';
const EXTRACT_KEYS = 'const o = JSON.parse(require("fs").readFileSync(0, "utf8")); JSON.stringify({ hubKey: o.hubKey, issuerKeys: [o.issuerKey] })';

describe('enrolling a terminal as the docs say', () => {
  it('enroll-terminal prints the certificate, the hub key and the issuer key; the extracted certificate and keys pass --check', () => {
    const keyFile = join(dir, 'terminal.key');
    const publicKey = run(['--import', 'tsx', 'terminal/main.ts', '--keygen', keyFile]).trim();
    expect(publicKey).toMatch(/^[0-9a-f]{64}$/);

    const output = tapsettle('enroll-terminal', '--init', '--id', 'gate-park-1', '--kind', 'gate', '--merchant', 'transit', '--public-key', publicKey);
    const enrolled = JSON.parse(output) as { terminalId: string; certificate: Envelope<'terminal.certificate'>; hubKey: string; issuerKey: string };
    expect(enrolled).toMatchObject({ terminalId: 'gate-park-1', hubKey: expect.stringMatching(/^[0-9a-f]{64}$/), issuerKey: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(enrolled.certificate.body).toMatchObject({ terminalId: 'gate-park-1', publicKey });

    // The issuer key is the one wallets' licenses verify against, and hub-keys prints the same keys.
    const wallet = JSON.parse(tapsettle('register-wallet')) as { license: Envelope<'wallet.license'>; issuerKey: string };
    expect(wallet.issuerKey).toBe(enrolled.issuerKey);
    expect(verifyWalletLicense(wallet.license, { trustedIssuers: [enrolled.issuerKey], nowMs: Date.now() }).ok).toBe(true);
    const keys = JSON.parse(tapsettle('hub-keys')) as { trustAnchor: string; issuerKey: string };
    expect(keys).toMatchObject({ trustAnchor: enrolled.hubKey, issuerKey: enrolled.issuerKey });

    const certificateFile = join(dir, 'terminal.cert.json');
    writeFileSync(certificateFile, run(['-p', EXTRACT_CERTIFICATE], output));
    const hubKeys = JSON.parse(run(['-p', EXTRACT_KEYS], output)) as { hubKey: string; issuerKeys: string[] };
    expect(hubKeys).toEqual({ hubKey: enrolled.hubKey, issuerKeys: [enrolled.issuerKey] });

    const config = join(dir, 'terminal.json');
    writeFileSync(
      config,
      JSON.stringify({
        terminalId: 'gate-park-1', kind: 'gate', merchantId: 'transit', dataDir: join(dir, 'state'), keyFile, certificateFile,
        hub: { url: 'mqtt://127.0.0.1:1', ...hubKeys }, nfc: { kind: 'emulated' }, io: { kind: 'virtual' }, gate: { station: 'park', mode: 'entry' },
      }),
    );
    expect(run(['--import', 'tsx', 'terminal/main.ts', '--config', config, '--check'])).toContain('config OK: gate-park-1 (gate)');
  }, 120_000);
});
