/**
 * One simulated terminal as a customer uses it. `DirectSiteTerminal` speaks the real wire
 * protocol over MQTT (terminal-signed requests, wallet-signed authorizations, hub-signed results
 * verified before acting, completion receipts) without emulated hardware; the demo uses the
 * full terminal runtime from simulators/site when it is present.
 */
import {
  computeFare,
  linesDigest,
  newChallenge,
  newRequestId,
  verifyMessage,
  type Envelope,
  type FareTable,
  type LineItemT,
  type SettlementOpT,
} from '../../protocol/index.ts';
import { fastSignMessage, nodeSigningKey } from '../load/purchase-request.ts';
import { connectTerminal, type TerminalClient } from '../load/terminal-client.ts';
import type { SimWallet } from './wallets.ts';

export type TerminalKind = 'gate' | 'vending' | 'pos';

export interface SiteOutcome {
  readonly requestId: string;
  readonly status: 'approved' | 'declined';
  readonly code?: string;
  readonly amountMinor: number;
  readonly holdUntilMs?: number;
}

export interface SiteTerminal {
  readonly terminalId: string;
  readonly kind: TerminalKind;
  readonly merchantId: string;
  readonly station?: string;
  /** Gates: which way people pass ('both' for a gate that does entry and exit). */
  readonly gateMode?: 'entry' | 'exit' | 'both';
  /** POS or vending. Vending also reports the dispense (`dispenseFails`: the motor jams). */
  purchase(wallet: SimWallet, lines: LineItemT[], options?: { dispenseFails?: boolean }): Promise<SiteOutcome>;
  /** Staffed POS: cash top-up (seed 004 claims 34–35). */
  topupCash(wallet: SimWallet, amountMinor: number, operatorId: string): Promise<SiteOutcome>;
  /** POS: sell a hub ticket product; the hub-signed ticket goes onto the wallet (seed 004 claims 15–16). Optional. */
  sellTicket?(wallet: SimWallet, product: string): Promise<SiteOutcome>;
  /** POS: the buyer cancels inside the window (seed 004 claim 13). */
  cancel(wallet: SimWallet, originalRequestId: string): Promise<SiteOutcome>;
  /** Gate entry: writes a gate-signed admission record to the wallet (approved = the barrier opened). */
  enter(wallet: SimWallet): Promise<SiteOutcome>;
  /** Gate exit: fare from the admission record (or the maximum without one). */
  exit(wallet: SimWallet): Promise<SiteOutcome>;
  close(): Promise<void>;
}

export interface DirectTerminalOptions {
  readonly url: string;
  readonly terminalId: string;
  readonly kind: TerminalKind;
  readonly merchantId: string;
  readonly station?: string;
  readonly secretKey: Uint8Array;
  readonly certificate: Envelope<'terminal.certificate'>;
  readonly hubKey: string;
  /** Hub keys trusted now (a rotation adds one); default: `hubKey` alone. */
  readonly trustedHubKeys?: () => readonly string[];
  readonly currency: string;
  readonly fares?: () => FareTable | undefined;
  readonly timeoutMs?: number;
}

interface ResultBody {
  requestId: string;
  status: 'approved' | 'declined';
  code?: string;
  amountMinor: number;
  holdUntil?: number;
  statement?: { body: { wallet: string; balanceMinor: number } };
}

export async function startDirectTerminal(o: DirectTerminalOptions): Promise<SiteTerminal> {
  const client: TerminalClient = await connectTerminal({ url: o.url, terminalId: o.terminalId, secretKey: o.secretKey, reconnectPeriodMs: 500 });
  const key = nodeSigningKey(o.secretKey);
  const timeoutMs = o.timeoutMs ?? 10_000;

  const send = async (op: SettlementOpT, wallet?: SimWallet): Promise<SiteOutcome> => {
    const requestId = newRequestId();
    const message = fastSignMessage('settlement.request', { requestId, terminalId: o.terminalId, time: Date.now(), offline: false, op }, key);
    const replyBytes = await client.request(Buffer.from(JSON.stringify(message)), requestId, timeoutMs);
    const reply = JSON.parse(replyBytes.toString('utf8')) as { type: string; body: ResultBody & { code?: string; hubKey: string }; sig: string };
    // seed 003: act only on a result the hub signed.
    const signer = reply.body.hubKey;
    if (!(o.trustedHubKeys?.() ?? [o.hubKey]).includes(signer) || !verifyMessage(reply, signer)) throw new Error(`${o.terminalId}: reply to ${requestId} has a bad hub signature`);
    if (reply.type !== 'settlement.result') return { requestId, status: 'declined', code: reply.body.code ?? 'ERROR', amountMinor: 0 };
    const b = reply.body;
    if (wallet && b.statement && b.statement.body.wallet === wallet.publicKey) wallet.balanceMinor = b.statement.body.balanceMinor;
    return {
      requestId,
      status: b.status,
      ...(b.code !== undefined ? { code: b.code } : {}),
      amountMinor: b.amountMinor,
      ...(b.holdUntil !== undefined ? { holdUntilMs: b.holdUntil } : {}),
    };
  };

  const authorize = (wallet: SimWallet, purpose: 'purchase' | 'fare', amountMinor: number, lines: LineItemT[]) =>
    fastSignMessage(
      'wallet.authorization',
      {
        wallet: wallet.publicKey,
        terminalId: o.terminalId,
        merchantId: o.merchantId,
        purpose,
        challenge: newChallenge(),
        amountMinor,
        currency: o.currency,
        linesDigest: linesDigest(lines),
        time: Date.now(),
        counter: wallet.nextCounter(),
      },
      wallet.key,
    );

  const receipt = async (requestId: string, outcome: 'dispensed' | 'passed' | 'delivered' | 'failed', reason?: string) => {
    const msg = fastSignMessage('completion.receipt', { requestId, terminalId: o.terminalId, outcome, time: Date.now(), ...(reason ? { reason } : {}) }, key);
    await client.publishReceipt(Buffer.from(JSON.stringify(msg)));
  };

  const requireKind = (kinds: TerminalKind[], what: string) => {
    if (!kinds.includes(o.kind)) throw new Error(`${o.terminalId} is a ${o.kind}: cannot ${what}`);
  };

  return {
    terminalId: o.terminalId,
    kind: o.kind,
    merchantId: o.merchantId,
    ...(o.station !== undefined ? { station: o.station } : {}),
    ...(o.kind === 'gate' ? { gateMode: 'both' as const } : {}),
    async purchase(wallet, lines, options = {}) {
      requireKind(['pos', 'vending'], 'sell');
      const amountMinor = lines.reduce((s, l) => s + l.qty * l.unitMinor, 0);
      const outcome = await send({ type: 'purchase', authorization: authorize(wallet, 'purchase', amountMinor, lines), license: wallet.license, lines }, wallet);
      if (outcome.status === 'approved') {
        if (o.kind === 'vending') await receipt(outcome.requestId, options.dispenseFails ? 'failed' : 'dispensed', options.dispenseFails ? 'drop sensor saw nothing' : undefined);
        else await receipt(outcome.requestId, 'delivered');
        if (outcome.holdUntilMs !== undefined) wallet.cancellable.set(outcome.requestId, outcome.holdUntilMs);
      }
      return outcome;
    },
    async topupCash(wallet, amountMinor, operatorId) {
      requireKind(['pos'], 'take cash');
      return send({ type: 'topup', wallet: wallet.publicKey, amountMinor, currency: o.currency, method: 'cash', operatorId }, wallet);
    },
    async cancel(wallet, originalRequestId) {
      requireKind(['pos'], 'cancel');
      const cancellation = fastSignMessage('cancellation', { originalRequestId, wallet: wallet.publicKey, time: Date.now(), challenge: newChallenge() }, wallet.key);
      const outcome = await send({ type: 'cancel', cancellation }, wallet);
      wallet.cancellable.delete(originalRequestId);
      return outcome;
    },
    async enter(wallet) {
      requireKind(['gate'], 'admit');
      // A gate decides entry locally (license, deny list) and writes the record to the wallet.
      const envelope = fastSignMessage(
        'gate.admission',
        { recordId: newChallenge(), wallet: wallet.publicKey, terminalId: o.terminalId, station: o.station ?? 'unknown', time: Date.now() },
        key,
      );
      wallet.admission = { station: envelope.body.station, envelope };
      return { requestId: '', status: 'approved', amountMinor: 0 };
    },
    async exit(wallet) {
      requireKind(['gate'], 'let out');
      const table = o.fares?.();
      if (!table) throw new Error(`${o.terminalId}: no fare table announced yet`);
      const exitTime = Date.now();
      const entry = wallet.admission?.envelope ?? null;
      wallet.admission = null;
      const fare = computeFare(table, entry ? { station: entry.body.station, time: entry.body.time } : null, o.station ?? 'unknown', exitTime);
      const outcome = await send(
        { type: 'fare', authorization: authorize(wallet, 'fare', fare.fareMinor, []), license: wallet.license, entry, exitStation: o.station ?? 'unknown', exitTime },
        wallet,
      );
      if (outcome.status === 'approved') await receipt(outcome.requestId, 'passed');
      return outcome;
    },
    close: () => client.close(),
  };
}
