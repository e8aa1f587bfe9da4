/**
 * Operator CLI for the hub: `npm run cli -- <command> [--data-dir ./data/hub]`.
 * Exit codes: 0 done; 1 refused or declined (a business outcome, or verify-ledger found a
 * discrepancy); 2 bad input (the message names the field); 3 a payout debited but not taken by the
 * clearing yet (held, sent again by the hub and by `payout retry`). Input is validated before the data
 * dir is opened, and each command writes in one step, so a rejected command writes nothing.
 * While a hub runs on the data dir, the commands that need the hub go to it over its admin
 * channel (hub/admin/admin-channel.ts) and act on its live state; the read-only ones read the files.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { pino } from 'pino';
import { parseStrictJson, TICKET_HORIZON_MS, toHex } from '../../protocol/index.ts';
import { SqliteLedgerStore } from '../ledger/sqlite-store.ts';
import type { Outcome } from '../ledger/types.ts';
import { BPS_DENOMINATOR } from '../ledger/split.ts';
import { verifyLedger } from '../ledger/verify.ts';
import { parseCatalogFile } from '../rules/catalog.ts';
import { parseFareTableFile } from '../rules/fare-tables.ts';
import { parseTicketProductsFile } from '../rules/tickets.ts';
import { sendAdminRequest, type AdminReply, type AdminRequest, type AdminRunner } from '../admin/admin-channel.ts';
import { brokerPasswordFor, writeMosquittoFiles, type BrokerPasswordSubject, type MosquittoDirectory } from '../mqtt/mosquitto-config.ts';
import { existingBrokerSecret, mosquittoCredentials } from '../mqtt/mosquitto-credentials.ts';
import { mapDecline } from '../service/decline-codes.ts';
import { createHub, DEFAULT_CURRENCY, MAX_OPERATOR_TOPUP_MINOR, type Hub } from '../service/hub.ts';
import { EXIT_BAD_INPUT, EXIT_PENDING, EXIT_REFUSED } from './exit-codes.ts';
import { isPayoutHeld, type PayoutHeld } from '../clearing/payouts.ts';
import { parseAcquirerReport } from '../clearing/acquirer-report.ts';
import { reconcileCardsWithLedger } from '../clearing/ledger-card-credits.ts';
import { InputError, OperationRefused } from '../service/input-error.ts';
import { BrokerAccountError } from '../mqtt/broker-account.ts';

/** Where one CLI run writes and what it acts on: the process's streams, or an admin request's reply. */
interface CliContext {
  readonly argv: readonly string[];
  /** Relative file arguments resolve against it. */
  readonly cwd: string;
  out(text: string): void;
  err(text: string): void;
  exitCode: number;
  /** The running hub, when it runs this command line for its admin channel. */
  readonly hub?: Hub;
}

function processContext(argv: readonly string[]): CliContext {
  return {
    argv,
    cwd: process.cwd(),
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    exitCode: 0,
  };
}

/**
 * An integer option: digits only, at least `min` (1: "a positive integer"; 0: "0 or a positive
 * integer"), at most 15 digits (exact as a double). One wording for every refusal, -5, 0 and 12.5
 * alike, with what was given.
 */
function int(field: string, text: string | undefined, min = 1): number | undefined {
  if (text === undefined) return undefined;
  const expected = min === 1 ? 'expected a positive integer' : min === 0 ? 'expected 0 or a positive integer' : `expected an integer ≥ ${min}`;
  if (!/^\d+$/.test(text) || Number(text) < min) throw new InputError(field, `${expected}, got ${JSON.stringify(text)}`);
  if (text.length > 15) throw new InputError(field, `${expected} of at most 15 digits, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** Licenses and certificates: at most 100 years (a typo's extra digits are refused, not signed). */
const MAX_VALIDITY_DAYS = 36_500;

function validityMs(text: string | undefined): number {
  const days = int('validity-days', text) ?? 365;
  if (days > MAX_VALIDITY_DAYS) throw new InputError('validity-days', `at most ${MAX_VALIDITY_DAYS} (100 years)`);
  return days * 24 * 3600_000;
}

/** rotate-hub-key's hours: the key ring plans at most the ticket horizon ahead (hub-keyring.ts). */
const MAX_ROTATION_HOURS = Math.floor(TICKET_HORIZON_MS / 3600_000);

function hex(field: string, text: string, chars: number | [number, number]): string {
  const [lo, hi] = Array.isArray(chars) ? chars : [chars, chars];
  if (!new RegExp(`^[0-9a-f]{${lo},${hi}}$`).test(text)) throw new InputError(field, `expected ${lo === hi ? lo : `${lo}..${hi}`} lowercase hex chars`);
  return text;
}

function readJson(field: string, cwd: string, file: string): unknown {
  let text: string;
  try {
    text = readFileSync(resolve(cwd, file), 'utf8');
  } catch (err) {
    throw new InputError(field, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return parseStrictJson(text);
  } catch (err) {
    throw new InputError(field, `${file} is not JSON: ${(err as Error).message}`);
  }
}

/** An instant: ISO 8601 with a time zone or a plain date (UTC midnight), or ms since the epoch. */
function instant(field: string, text: string): number {
  if (/^\d{1,15}$/.test(text)) return Number(text);
  const isoDate = /^\d{4}-\d{2}-\d{2}$/;
  const isoTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;
  // Date.parse rolls impossible dates over (2026-02-31 → 3 March, T24:00 → the next day): refused.
  const [y, mo, d, h = '0', mi = '0', sec = '0'] = text.split(/[-T:.Z+]/);
  const real = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  const calendar = real.getUTCDate() === Number(d) && real.getUTCMonth() === Number(mo) - 1 && Number(h) < 24 && Number(mi) < 60 && Number(sec) < 60;
  const ms = (isoDate.test(text) || isoTime.test(text)) && calendar ? Date.parse(text) : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < 0) throw new InputError(field, `expected an ISO 8601 date or time with zone (2026-12-01, 2026-12-01T06:00:00Z) or ms since the epoch, got ${JSON.stringify(text)}`);
  return ms;
}

function preValidate<T>(r: { ok: true; value: T } | { ok: false; field: string; message: string }): T {
  if (!r.ok) throw new InputError(r.field, r.message);
  return r.value;
}

/**
 * Reads the ledger file without taking the hub's lock, so an operator can verify and look up
 * accounts while the hub runs (SQLite WAL: readers never block the writer).
 */
async function withLedgerReadOnly(ctx: CliContext, program: Command, fn: (store: SqliteLedgerStore) => Promise<void>): Promise<void> {
  const file = join(dataDirOf(ctx, program), 'ledger.sqlite');
  if (!existsSync(file)) throw new InputError('data-dir', `no ledger at ${file}`);
  const store = SqliteLedgerStore.open(file, { readonly: true });
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

/** A catalog for a merchant no terminal sells for is announced to nobody: most often a typo. */
function warnIfNoTerminalSells(ctx: CliContext, hub: Hub, merchantId: string): void {
  if (hub.listTerminals().some((t) => t.merchantId === merchantId && !t.revoked)) return;
  ctx.err(`warning: no enrolled terminal sells for merchant '${merchantId}' (a typo?); its terminals get this catalog once enrolled\n`);
}

function dataDirOf(ctx: CliContext, program: Command): string {
  return resolve(ctx.cwd, program.opts<{ dataDir: string }>().dataDir);
}

/**
 * Runs fn on the hub: the running one (this command line came over its admin channel); else the
 * hub running on the data dir gets the command line over its admin channel; else the CLI opens
 * the hub, runs fn and always closes it, never leaving the ledger half-flushed.
 */
async function withHub(ctx: CliContext, program: Command, fn: (hub: Hub) => Promise<void> | void): Promise<void> {
  if (ctx.hub) return await fn(ctx.hub);
  const dataDir = dataDirOf(ctx, program);
  const reply = await sendAdminRequest(dataDir, { v: 1, argv: ctx.argv, cwd: ctx.cwd });
  if (reply) {
    ctx.out(reply.stdout);
    ctx.err(reply.stderr);
    ctx.exitCode = reply.exitCode;
    return;
  }
  // A mistyped --data-dir (or the default, run from the wrong folder) must not quietly become a
  // second hub with keys of its own.
  const { init, currency } = program.opts<{ init?: boolean; currency?: string }>();
  const isNew = !existsSync(join(dataDir, 'ledger.sqlite'));
  if (isNew && init !== true) {
    throw new InputError('data-dir', `no hub at ${dataDir} (no ledger.sqlite): give the hub's --data-dir, or pass --init to create a new hub there`);
  }
  const logger = pino({ level: 'info', base: { part: 'cli' } }, pino.destination(2));
  // No timers: holds are released and held payouts sent by the running hub (or `payout retry`).
  // A new hub takes its currency for good (EUR unless named); an existing one keeps its ledger's.
  const named = currency ?? (isNew ? DEFAULT_CURRENCY : undefined);
  const hub = await createHub({ dataDir, logger, holdReleaseIntervalMs: 0, payoutRetry: { intervalMs: 0 }, ...(named !== undefined ? { currency: named } : {}) });
  try {
    await fn(hub);
  } finally {
    await hub.close();
  }
}

function buildProgram(ctx: CliContext): Command {
  const print = (value: unknown): void => ctx.out(`${JSON.stringify(value, null, 2)}\n`);
  const outcome = (o: Outcome): void => {
    // A decline in the wire's code (protocol ERROR_CODES), as terminals and refusals show it.
    print(o.status === 'declined' ? { ...o, code: mapDecline(o.code) } : o);
    if (o.status === 'declined') ctx.exitCode = EXIT_REFUSED;
  };
  const program = new Command();
  program
    .name('tapsettle')
    .description('Operator commands for the tapsettle settlement hub, and its fleet/load simulator (sim)')
    .option('--data-dir <dir>', 'hub data folder (keys, registry, ledger)', './data/hub')
    .option('--init', 'create a new hub in --data-dir if there is none (otherwise a folder without a hub is refused)')
    .option('--currency <code>', "the hub's currency: a new hub's with --init (default EUR), or which one of a ledger that holds several")
    .configureOutput({ writeOut: (text) => ctx.out(text), writeErr: (text) => ctx.err(text) })
    .exitOverride()
    .showHelpAfterError()
    .addHelpText('after', '\nStart the whole demo system (hub, dashboard, simulated site) with: npm start');

  program
    .command('register-wallet')
    .description('register a wallet and issue its license; without --public-key, a simulated wallet key is generated and printed')
    .option('--public-key <hex>', "the wallet's Ed25519 public key")
    .option('--name <name>', 'real name (kept in the issuer table only)')
    .option('--identity <json>', 'identity data as a JSON object (issuer table only)')
    .option('--age-over <years>', 'attested minimum age', '0')
    .option('--groups <list>', 'comma-separated groups', '')
    .option('--offline-limit <minor>', 'offline spending limit in minor units', '0')
    .option('--validity-days <days>', 'license validity', '365')
    .action(async (o: Record<string, string | undefined>) => {
      let identity: Record<string, unknown> = {};
      if (o['identity'] !== undefined) {
        try {
          identity = JSON.parse(o['identity']) as Record<string, unknown>;
        } catch {
          throw new InputError('identity', 'not JSON');
        }
        if (identity === null || typeof identity !== 'object' || Array.isArray(identity)) throw new InputError('identity', 'expected a JSON object');
      }
      if (o['name'] !== undefined) identity = { ...identity, name: o['name'] };
      const input = {
        ...(o['publicKey'] !== undefined ? { publicKey: hex('public-key', o['publicKey'], 64) } : {}),
        identity,
        ageOver: int('age-over', o['ageOver'], 0) ?? 0,
        groups: (o['groups'] ?? '').split(',').filter((g) => g.length > 0),
        offlineLimitMinor: int('offline-limit', o['offlineLimit'], 0) ?? 0,
        validityMs: validityMs(o['validityDays']),
      };
      await withHub(ctx, program, async (hub) => {
        const { license, keyPair } = await hub.registerWallet(input);
        print({
          wallet: license.body.wallet,
          ...(keyPair ? { secretKey: toHex(keyPair.secretKey) } : {}),
          license,
          issuerKey: hub.issuerPublicKey,
          hubKey: hub.trustAnchorKey,
          // Every key that signs now or will: a wallet trusting them all accepts terminals enrolled after a rotation.
          hubKeys: hub.hubKeys().filter((k) => k.notAfter >= Date.now()).map((k) => k.publicKey),
        });
      });
    });

  program
    .command('enroll-terminal')
    .description('enroll a terminal and issue its certificate; without --public-key a key is generated and printed')
    .requiredOption('--id <terminalId>', 'terminal id')
    .requiredOption('--kind <kind>', 'vending | gate | pos')
    .requiredOption('--merchant <merchantId>', 'merchant the terminal sells for')
    .option('--public-key <hex>', "the terminal's Ed25519 public key")
    .option('--parent <merchantId>', 'parent merchant (mall) of this merchant')
    .option('--share-bps <bps>', "parent's share of the merchant's revenue in basis points (with --parent; default 0)")
    .action(async (o: Record<string, string | undefined>) => {
      const kind = o['kind'] as string;
      if (!['vending', 'gate', 'pos'].includes(kind)) throw new InputError('kind', 'expected vending, gate or pos');
      const input = {
        terminalId: o['id'] as string,
        kind: kind as 'vending' | 'gate' | 'pos',
        merchantId: o['merchant'] as string,
        ...(o['publicKey'] !== undefined ? { publicKey: hex('public-key', o['publicKey'], 64) } : {}),
        ...(o['parent'] !== undefined ? { parentMerchantId: o['parent'] } : {}),
        // Left out for an existing merchant: it keeps its share (a new one gets 0).
        ...(o['shareBps'] !== undefined ? { shareBps: int('share-bps', o['shareBps'], 0) as number } : {}),
      };
      if (o['shareBps'] !== undefined && o['parent'] === undefined) throw new InputError('share-bps', 'only with --parent');
      if ((input.shareBps ?? 0) > BPS_DENOMINATOR) throw new InputError('share-bps', `at most ${BPS_DENOMINATOR} (basis points)`);
      await withHub(ctx, program, async (hub) => {
        const { certificate, keyPair, openedMerchants } = await hub.enrollTerminal(input).catch((err: unknown) => {
          // The service names its API's field; the operator typed --public-key.
          if (err instanceof InputError && err.field === 'publicKey') throw new InputError('public-key', err.message.slice('publicKey: '.length));
          throw err;
        });
        // hubKey and issuerKey are the terminal config's hub.hubKey and hub.issuerKeys; brokerPassword
        // its hub.password behind an external Mosquitto (once one is set up: then rerun mosquitto-files).
        // From the registry's record, as mosquitto-files writes it (a new terminal: scheme 2).
        const brokerPassword = brokerPasswordOf(dataDirOf(ctx, program), hub.registry.terminal(input.terminalId));
        print({
          terminalId: input.terminalId,
          ...(keyPair ? { secretKey: toHex(keyPair.secretKey) } : {}),
          certificate,
          hubKey: hub.trustAnchorKey,
          issuerKey: hub.issuerPublicKey,
          openedMerchants,
          ...(brokerPassword !== undefined ? { brokerPassword } : {}),
        });
        if (brokerPassword !== undefined) ctx.err(MOSQUITTO_RERUN);
      });
    });

  program
    .command('rotate-hub-key')
    .description('add the next hub signing key: announced now, signing after --activate-in-hours, the current key trusted --retire-after-hours longer')
    .option('--activate-in-hours <hours>', 'time for terminals to learn the new key before it signs', '24')
    .option('--retire-after-hours <hours>', 'how long the current key stays trusted once the new one signs', '168')
    .option('--compromised', 'the key files leaked: replace every hub key by a new one at once (hours ignored; every terminal and wallet must be given the new key)')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const hours = (field: string, text: unknown) => {
        const h = int(field, String(text), 0) as number;
        if (h > MAX_ROTATION_HOURS) throw new InputError(field, `at most ${MAX_ROTATION_HOURS} (the ticket horizon, ${MAX_ROTATION_HOURS / 24} days)`);
        return h * 3600_000;
      };
      const plan = o['compromised']
        ? { activateInMs: 0, retireAfterMs: 0, compromised: true }
        : { activateInMs: hours('activate-in-hours', o['activateInHours']), retireAfterMs: hours('retire-after-hours', o['retireAfterHours']) };
      await withHub(ctx, program, (hub) => {
        const next = hub.rotateHubKey(plan);
        print({ next, keys: hub.hubKeys() });
      });
    });

  program
    .command('reissue-certificate <terminalId>')
    .description("issue an enrolled terminal a new certificate under the hub's current trust anchor (after a key rotation); install it as the terminal's certificateFile")
    .option('--validity-days <days>', 'certificate validity', '365')
    .action(async (terminalId: string, o: Record<string, string | undefined>) => {
      const validity = validityMs(o['validityDays']);
      await withHub(ctx, program, (hub) => {
        const certificate = hub.reissueCertificate(terminalId, validity);
        // The broker password is bound to the certificate: a new serial, a new password (a terminal on
        // the legacy id-only password moves to the certificate-bound one here).
        const brokerPassword = brokerPasswordOf(dataDirOf(ctx, program), hub.registry.terminal(terminalId));
        print({ terminalId, certificate, hubKey: hub.trustAnchorKey, ...(brokerPassword !== undefined ? { brokerPassword } : {}) });
        if (brokerPassword !== undefined) ctx.err(MOSQUITTO_RERUN);
      });
    });

  program
    .command('hub-keys')
    .description("the hub signing keys and their validity windows (the keys announcement lists the same), and the issuer key terminals trust wallets' licenses by")
    .action(async () => {
      await withHub(ctx, program, (hub) => print({ signing: hub.hubPublicKey, trustAnchor: hub.trustAnchorKey, keys: hub.hubKeys(), issuerKey: hub.issuerPublicKey }));
    });

  program
    .command('revoke-terminal <terminalId>')
    .description('revoke a terminal (refused at once, announced in the keys message)')
    .action(async (terminalId: string) => {
      await withHub(ctx, program, (hub) => {
        if (!hub.revokeTerminal(terminalId)) throw new OperationRefused('NOT_FOUND', `${terminalId} is unknown or already revoked`);
        print({ revoked: terminalId });
      });
    });

  program
    .command('reissue-license <wallet>')
    .description("issue a registered wallet a new license (renewal, or changed attributes; what is not given is kept): the hub then takes only the new one")
    .option('--age-over <years>', 'attested minimum age')
    .option('--groups <list>', "comma-separated groups ('' for none)")
    .option('--offline-limit <minor>', 'offline spending limit in minor units')
    .option('--validity-days <days>', 'license validity from now', '365')
    .action(async (wallet: string, o: Record<string, string | undefined>) => {
      hex('wallet', wallet, 64);
      const ageOver = int('age-over', o['ageOver'], 0);
      const offlineLimitMinor = int('offline-limit', o['offlineLimit'], 0);
      const input = {
        ...(ageOver !== undefined ? { ageOver } : {}),
        ...(o['groups'] !== undefined ? { groups: o['groups'].split(',').filter((g) => g.length > 0) } : {}),
        ...(offlineLimitMinor !== undefined ? { offlineLimitMinor } : {}),
        validityMs: validityMs(o['validityDays']),
      };
      await withHub(ctx, program, (hub) => {
        const license = hub.reissueLicense(wallet, input);
        print({ wallet, license, issuerKey: hub.issuerPublicKey });
      });
    });

  program
    .command('revoke-wallet <wallet>')
    .description("revoke a wallet's license (it is also blocklisted and announced)")
    .action(async (wallet: string) => {
      hex('wallet', wallet, 64);
      await withHub(ctx, program, (hub) => {
        if (!hub.revokeWallet(wallet)) throw new OperationRefused('NOT_FOUND', 'wallet is unknown or already revoked');
        print({ revoked: wallet });
      });
    });

  program
    .command('top-up')
    .description('operator cash top-up of a wallet')
    .requiredOption('--wallet <hex>', 'wallet public key')
    .requiredOption('--amount <minor>', 'amount in minor units')
    .requiredOption('--operator <id>', 'operator id')
    .option('--request-id <hex>', 'idempotency key (reuse it when retrying)')
    .action(async (o: Record<string, string | undefined>) => {
      const input = {
        wallet: hex('wallet', o['wallet'] as string, 64),
        amountMinor: int('amount', o['amount']) as number,
        operatorId: o['operator'] as string,
        ...(o['requestId'] !== undefined ? { requestId: hex('request-id', o['requestId'], 32) } : {}),
      };
      // The hub checks it too; here it is refused before the folder is opened.
      if (input.amountMinor > MAX_OPERATOR_TOPUP_MINOR) throw new InputError('amount', `at most ${MAX_OPERATOR_TOPUP_MINOR} minor units per top-up`);
      await withHub(ctx, program, async (hub) => outcome(await hub.topUp(input)));
    });

  for (const [name, field, parse, importer] of [
    ['import-catalog', 'catalog', parseCatalogFile, (h: Hub, raw: unknown) => h.importCatalog(raw)],
    ['import-fares', 'fares', parseFareTableFile, (h: Hub, raw: unknown) => h.importFares(raw)],
    ['import-products', 'products', parseTicketProductsFile, (h: Hub, raw: unknown) => ({ productsVersion: h.importProducts(raw) })],
  ] as const) {
    program
      .command(`${name} <file>`)
      .description(`import a ${field} JSON file as a new version (announced to terminals)`)
      .action(async (file: string) => {
        const raw = readJson('file', ctx.cwd, file);
        preValidate((parse as (raw: unknown) => { ok: true; value: unknown } | { ok: false; field: string; message: string })(raw));
        await withHub(ctx, program, (hub) => {
          print(importer(hub, raw));
          if (name === 'import-catalog') warnIfNoTerminalSells(ctx, hub, (raw as { merchantId: string }).merchantId);
        });
      });
  }

  program
    .command('refund <requestId>')
    .description('refund a settled purchase or fare in full (at most once)')
    .action(async (requestId: string) => {
      hex('requestId', requestId, [32, 64]);
      await withHub(ctx, program, async (hub) => outcome(await hub.refund(requestId)));
    });

  program
    .command('cancel <requestId>')
    .description('cancel a purchase inside its cancellation window')
    .action(async (requestId: string) => {
      hex('requestId', requestId, [32, 64]);
      await withHub(ctx, program, async (hub) => outcome(await hub.cancel(requestId)));
    });

  const held = (p: PayoutHeld): void => {
    const { payoutId, merchantId, amountMinor, currency } = p.payout;
    ctx.err(
      `payout ${payoutId} NOT SENT (${p.code}): the clearing did not take it. ${amountMinor} ${currency} is debited from ${merchantId} and held in clearing; ` +
        `the running hub sends it again with the same payout id (at its start and on its retry timer). Retry now: ${p.retry}\n`,
    );
    ctx.exitCode = EXIT_PENDING;
  };

  const payout = program
    .command('payout')
    .description("pay a merchant's balance out through the clearing adapter; `payout retry` sends held payouts again")
    .option('--merchant <merchantId>', 'merchant id (required)')
    .option('--amount <minor>', 'amount (default: the whole balance)')
    .option('--payout-id <hex>', 'idempotency key (reuse it when retrying)')
    .action(async (o: Record<string, string | undefined>) => {
      if (o['merchant'] === undefined) throw new InputError('merchant', "required: payout --merchant M (or 'payout retry' to send held payouts)");
      const input = {
        merchantId: o['merchant'],
        ...(o['amount'] !== undefined ? { amountMinor: int('amount', o['amount']) as number } : {}),
        ...(o['payoutId'] !== undefined ? { payoutId: hex('payout-id', o['payoutId'], 32) } : {}),
      };
      await withHub(ctx, program, async (hub) => {
        const r = await hub.payout(input);
        print(r);
        if (isPayoutHeld(r)) held(r);
        else if (!r.ok) ctx.exitCode = EXIT_REFUSED;
      });
    });

  payout
    .command('retry')
    .description('send payouts the clearing has not taken again, with their own payout ids (all, or one); first records ledger payouts the registry lost')
    .option('--payout-id <hex>', 'only this payout')
    .action(async (o: Record<string, string | undefined>, cmd: Command) => {
      // `payout` has a --payout-id too: commander hands it to the parent when given after `retry`.
      const parent = cmd.parent?.opts<Record<string, string | undefined>>() ?? {};
      for (const field of ['merchant', 'amount'] as const) if (parent[field] !== undefined) throw new InputError(field, 'not an option of payout retry');
      const id = o['payoutId'] ?? parent['payoutId'];
      const payoutId = id !== undefined ? hex('payout-id', id, 32) : undefined;
      await withHub(ctx, program, async (hub) => {
        const tried = await hub.retryPayouts(payoutId !== undefined ? { payoutId } : {});
        const failed = tried.filter((p) => p.state !== 'sent');
        print({ sent: tried.filter((p) => p.state === 'sent'), failed });
        if (failed.length > 0) {
          ctx.err(`${failed.length} payout(s) still NOT SENT (UNAVAILABLE): held in clearing; the running hub keeps retrying them with their own ids\n`);
          ctx.exitCode = EXIT_PENDING;
        }
      });
    });

  program
    .command('mosquitto-files')
    .description(
      'write mosquitto.conf with its password and ACL files for every enrolled terminal (each with the password it was given), for an external Mosquitto; rerun after enrolling, revoking or reissuing a terminal, then reload Mosquitto (kill -HUP)',
    )
    .requiredOption('--out <dir>', 'folder for the files (Mosquitto must be able to read it)')
    .requiredOption('--port <n>', 'port Mosquitto listens on')
    .option('--host <addr>', 'address Mosquitto listens on', '127.0.0.1')
    .option('--tls-cert <file>', 'TLS certificate (PEM) for the listener')
    .option('--tls-key <file>', 'TLS private key (PEM) for the listener')
    .option('--broker-user <name>', 'account Mosquitto runs as (started as root, it switches to it before reading these files)', 'mosquitto')
    .action(async (o: Record<string, string | undefined>) => {
      const port = int('port', o['port']) as number;
      if (port > 65_535) throw new InputError('port', 'at most 65535');
      if ((o['tlsCert'] === undefined) !== (o['tlsKey'] === undefined)) throw new InputError('tls-cert', 'give --tls-cert and --tls-key together');
      const tls = o['tlsCert'] !== undefined ? { certFile: resolve(ctx.cwd, o['tlsCert']), keyFile: resolve(ctx.cwd, o['tlsKey'] as string) } : undefined;
      await withHub(ctx, program, (hub) => {
        const creds = mosquittoCredentials(dataDirOf(ctx, program));
        const listing: MosquittoDirectory = {
          listTerminals: () =>
            hub.registry.terminals().map((t) => ({ terminalId: t.terminalId, publicKey: t.publicKey, serial: t.serial, brokerPasswordScheme: t.brokerPasswordScheme, revoked: t.revoked })),
        };
        const files = brokerInput(tls, () =>
          writeMosquittoFiles({ dir: resolve(ctx.cwd, o['out'] as string), port, host: o['host'] as string, directory: listing, brokerUser: o['brokerUser'] as string, ...creds, ...(tls ? { tls } : {}) }),
        );
        // The hub's config for this broker: mqtt { kind: external, url, username, passwordFile, caFile? }.
        const hubUrl = tls ? tlsHubUrl(tls.certFile, port) : undefined;
        const legacy = files.legacyPasswordTerminals;
        print({
          ...files,
          legacyPasswordCount: legacy.length,
          hubPasswordFile: creds.hubPasswordFile,
          hubConfig: { kind: 'external', url: hubUrl?.url ?? files.url, username: files.hubUsername, passwordFile: creds.hubPasswordFile, ...(hubUrl?.caFile !== undefined ? { caFile: hubUrl.caFile } : {}) },
        });
        if (legacy.length > 0) ctx.err(legacyPasswordsNote(legacy));
      });
    });

  program
    .command('broker-password <terminalId>')
    .description("an enrolled terminal's password for an external Mosquitto (its terminal.json hub.password)")
    .action(async (terminalId: string) => {
      await withHub(ctx, program, (hub) => {
        const terminal = hub.registry.terminal(terminalId);
        if (!terminal || terminal.revoked) throw new OperationRefused('NOT_FOUND', `${terminalId} is not an enrolled terminal`);
        // By the terminal's own scheme: what mosquitto-files writes into passwd for it.
        print({ terminalId, password: brokerPasswordFor(mosquittoCredentials(dataDirOf(ctx, program)).brokerSecret, terminal), scheme: terminal.brokerPasswordScheme });
        if (terminal.brokerPasswordScheme === 1) ctx.err(legacyPasswordsNote([terminalId]));
      });
    });

  const bl = program.command('blocklist').description('the announced blocklist');
  bl.command('add <wallet>')
    .option('--reason <text>', 'why', 'operator')
    .action(async (wallet: string, o: { reason: string }) => {
      hex('wallet', wallet, 64);
      await withHub(ctx, program, (hub) => {
        print({ wallet, added: hub.blocklistAdd(wallet, o.reason) });
        // Added all the same: a lost card may be blocklisted before its registration is imported.
        if (!hub.registry.wallet(wallet)) {
          ctx.err(`warning: wallet ${wallet.slice(0, 16)}… is not registered with this hub (a typo?); blocklisted anyway, as a card may be blocklisted before its registration is imported\n`);
        }
      });
    });
  bl.command('remove <wallet>').action(async (wallet: string) => {
    hex('wallet', wallet, 64);
    await withHub(ctx, program, (hub) => print({ wallet, removed: hub.blocklistRemove(wallet) }));
  });
  bl.command('list').action(async () => {
    await withHub(ctx, program, (hub) => print({ version: hub.registry.blocklistVersion(), wallets: hub.blocklist() }));
  });

  program
    .command('incidents')
    .description('what terminals reported they could not settle (a gate opened, the wallet never signed), newest first')
    .option('--wallet <publicKey>', "one wallet's")
    .option('--limit <n>', 'at most this many (1 to 1000)', '100')
    .action(async (o: { wallet?: string; limit: string }) => {
      const limit = int('limit', o.limit) as number;
      if (o.wallet !== undefined) hex('wallet', o.wallet, 64);
      await withHub(ctx, program, (hub) => print({ incidents: hub.incidents({ limit, ...(o.wallet !== undefined ? { wallet: o.wallet } : {}) }) }));
    });

  program
    .command('show-account <id>')
    .description('balance and history of a wallet (public key) or merchant; read-only, works while the hub runs')
    .option('--limit <n>', 'history entries', '50')
    .action(async (id: string, o: { limit: string }) => {
      const limit = int('limit', o.limit) as number;
      if (limit > 1000) throw new InputError('limit', 'at most 1000');
      await withLedgerReadOnly(ctx, program, async (store) => {
        const account = (await store.accountsById([id])).get(id);
        if (!account) throw new OperationRefused('NOT_FOUND', `no account ${id}`);
        print({ account, history: await store.history(account.num, limit, null) });
      });
    });

  program
    .command('verify-ledger')
    .description('recompute balances from the journal and check conservation; exit 1 on a discrepancy; read-only')
    .action(async () => {
      await withLedgerReadOnly(ctx, program, async (store) => {
        const r = await verifyLedger(store);
        print(r);
        if (!r.ok) {
          ctx.err(`verify-ledger: first discrepancy ${JSON.stringify(r.firstDiscrepancy)}\n`);
          ctx.exitCode = EXIT_REFUSED;
        }
      });
    });

  program
    .command('reconcile-cards')
    .description("compare the card acquirer's settlement report with the ledger's card top-ups of a period; exit 1 on a discrepancy; read-only")
    .requiredOption('--report <file>', 'the acquirer\'s report as JSON: {"charges": [{"requestId", "amountMinor", "currency", "wallet"?, "authCode"?}]}')
    .requiredOption('--from <time>', 'period start, inclusive (ISO 8601 date or time with zone, or ms)')
    .requiredOption('--to <time>', 'period end, exclusive')
    .action(async (o: { report: string; from: string; to: string }) => {
      const fromMs = instant('from', o.from);
      const toMs = instant('to', o.to);
      if (toMs <= fromMs) throw new InputError('to', 'the period must end after it starts');
      const report = preValidate(parseAcquirerReport(readJson('report', ctx.cwd, o.report)));
      await withLedgerReadOnly(ctx, program, async (store) => {
        const r = await reconcileCardsWithLedger(store, report, fromMs, toMs);
        print(r);
        if (!r.ok) {
          ctx.err(
            `reconcile-cards: ${r.chargedNotCredited.length} charged but not credited, ${r.creditedNotCharged.length} credited but not charged, ${r.mismatched.length} mismatched, ${r.duplicateCharges.length} duplicate charges\n`,
          );
          ctx.exitCode = EXIT_REFUSED;
        }
      });
    });

  program
    .command('reveal-identity <wallet>')
    .description('disclose the identity behind a pseudonym (written to the disclosure log)')
    .requiredOption('--operator <id>', 'who asks')
    .requiredOption('--reason <text>', 'why (kept in the disclosure log)')
    .action(async (wallet: string, o: { operator: string; reason: string }) => {
      hex('wallet', wallet, 64);
      await withHub(ctx, program, (hub) => print({ wallet, identity: hub.revealIdentity(wallet, o.operator, o.reason) }));
    });

  program
    .command('disclosure-log')
    .description('every identity disclosure so far')
    .action(async () => {
      await withHub(ctx, program, (hub) => print(hub.registry.disclosureLog()));
    });

  // Listed here for the help; the `tapsettle` command (bin/tapsettle.ts) runs it before this CLI.
  program
    .command('sim')
    .description('fleet/load simulator: a throw-away hub, simulated terminals and a load generator (tapsettle sim --help)')
    .usage('[options]')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      throw new InputError('command', 'sim is run by the tapsettle command (bin/tapsettle.js): tapsettle sim --help');
    });

  return program;
}

/** Told with every new broker password (enroll-terminal, reissue-certificate): Mosquitto knows it only from its passwd file. */
const MOSQUITTO_RERUN =
  "note: this terminal's broker password (brokerPassword, its terminal.json hub.password) is bound to this certificate: run `tapsettle mosquitto-files` again and reload Mosquitto (kill -HUP); its old password is refused from then on\n";

/**
 * What mosquitto-files and broker-password tell about terminals still on the legacy broker
 * password (scheme 1: derived from the id alone, as by hubs before 2026-12-02). They keep working;
 * each moves to the certificate-bound one alone.
 */
function legacyPasswordsNote(terminalIds: readonly string[]): string {
  const shown = terminalIds.slice(0, 5).join(', ') + (terminalIds.length > 5 ? `, … (${terminalIds.length - 5} more: legacyPasswordTerminals)` : '');
  const one = terminalIds.length === 1 ? terminalIds[0] : '<id>';
  return (
    `note: ${terminalIds.length} terminal${terminalIds.length === 1 ? '' : 's'} still on the legacy broker password (derived from the terminal id alone, as before 2026-12-02; unchanged, it keeps working): ${shown}. ` +
    `A leaked one can be rotated only by moving that terminal to a password bound to its certificate: \`tapsettle reissue-certificate ${one}\`, ` +
    'install the printed certificate and give the terminal the printed brokerPassword (its terminal.json hub.password), then run `tapsettle mosquitto-files` again and reload Mosquitto (kill -HUP)\n'
  );
}

/** A terminal's broker password by its registry record (its scheme), when this data folder has a broker secret (an external Mosquitto). */
function brokerPasswordOf(dataDir: string, terminal: BrokerPasswordSubject | undefined): string | undefined {
  if (terminal === undefined) throw new Error('brokerPasswordOf: terminal is not in the registry');
  const secret = existingBrokerSecret(dataDir);
  return secret === undefined ? undefined : brokerPasswordFor(secret, terminal);
}

/** What the broker's account cannot use (or a file that is not there) is the operator's input to fix: exit 2, naming the option. */
function brokerInput<T>(tls: { certFile: string; keyFile: string } | undefined, write: () => T): T {
  try {
    return write();
  } catch (err) {
    if (!(err instanceof BrokerAccountError)) throw err;
    const file = err.path === tls?.certFile ? 'tls-cert' : err.path === tls?.keyFile ? 'tls-key' : 'tls-cert/tls-key';
    throw new InputError({ BROKER_USER_UNKNOWN: 'broker-user', BROKER_CANNOT_REACH: 'out', BROKER_CANNOT_READ: file }[err.code], err.message);
  }
}

/**
 * The URL the hub reaches a TLS listener by: the host name its certificate names (its first DNS
 * name, else IP address, else CN), which the hub verifies as the kiosks do — the listener's
 * address (0.0.0.0, 127.0.0.1) is not in the certificate. A self-signed certificate is also the
 * CA the hub must trust (caFile); one a CA signed is left to Node's default CAs or the
 * operator's caFile. Undefined when the certificate cannot be read here (Mosquitto reads it as
 * its own account): the listener's URL is printed then.
 */
function tlsHubUrl(certFile: string, port: number): { url: string; caFile?: string } | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(certFile));
  } catch {
    return undefined;
  }
  const names = (cert.subjectAltName ?? '').split(/,\s*/);
  const dns = names.find((n) => n.startsWith('DNS:'))?.slice(4);
  const ip = names.find((n) => n.startsWith('IP Address:'))?.slice('IP Address:'.length);
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  const host = dns ?? (ip !== undefined ? (ip.includes(':') ? `[${ip}]` : ip) : cn);
  if (host === undefined) return undefined;
  const selfSigned = cert.checkIssued(cert) && cert.verify(cert.publicKey);
  return { url: `mqtts://${host}:${port}`, ...(selfSigned ? { caFile: certFile } : {}) };
}

export async function main(argv: readonly string[], ctx: CliContext = processContext(argv)): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv as string[]);
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help asked for (--help, `help`) is exit 0; help shown because a command is missing
      // (`tapsettle`, `tapsettle blocklist`) is a usage error, as an unknown command is.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || (err.code === 'commander.help' && err.exitCode === 0)) return 0;
      return EXIT_BAD_INPUT;
    }
    if (err instanceof InputError) {
      ctx.err(`error: invalid ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    if (err instanceof OperationRefused) {
      ctx.err(`refused: ${err.message}\n`);
      return EXIT_REFUSED;
    }
    ctx.err(`error: ${(err as Error).message}\n`);
    return EXIT_REFUSED;
  }
}

/** Runs admin-channel command lines on the running hub, with this CLI's parsing and checks. */
export function adminRunnerFor(hub: Hub): AdminRunner {
  return async (request: AdminRequest): Promise<AdminReply> => {
    let stdout = '';
    let stderr = '';
    const ctx: CliContext = { argv: request.argv, cwd: request.cwd, out: (t) => void (stdout += t), err: (t) => void (stderr += t), exitCode: 0, hub };
    const exitCode = await main(request.argv, ctx);
    return { stdout, stderr, exitCode };
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  process.exitCode = await main(process.argv);
}
