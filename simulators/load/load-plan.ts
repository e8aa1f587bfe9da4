/**
 * The contract between a benchmark and the load generator process (load-generator.ts): the fleet
 * to simulate, the phases to run, and what each phase measured.
 */
import type { Envelope } from '../../protocol/index.ts';

export interface FleetTerminal {
  readonly terminalId: string;
  readonly merchantId: string;
  /** Hex Ed25519 secret key: signs requests (and connect tokens on the embedded broker). */
  readonly secretKeyHex: string;
  /** External broker: the per-terminal broker password instead of a connect token. */
  readonly password?: string;
}

export interface FleetWallet {
  readonly secretKeyHex: string;
  readonly license: Envelope<'wallet.license'>;
  /** Index into `terminals` of the terminal this wallet shops at. */
  readonly terminal: number;
}

export interface FleetFile {
  readonly url: string;
  /** The hub key signing results during the run (the generator checks a sample against it). */
  readonly hubKeyHex: string;
  readonly terminals: readonly FleetTerminal[];
  readonly wallets: readonly FleetWallet[];
  readonly sku: string;
  readonly unitMinor: number;
  readonly currency: string;
}

/** `trace`: return every answered request's timing with the result (bench/request-trace.ts). */
export type Phase =
  | { readonly name: string; readonly mode: 'open'; readonly rps: number; readonly durationMs: number; readonly trace?: boolean }
  /** Closed loop: `window` requests in flight at all times, at most one per terminal. */
  | { readonly name: string; readonly mode: 'closed'; readonly window: number; readonly durationMs: number; readonly trace?: boolean };

/** [request id, due, sent, answered], each performance.timeOrigin + performance.now() in ms. */
export type RequestTiming = readonly [requestId: string, dueMs: number, sentMs: number, answeredMs: number];

export interface PhaseResult {
  readonly name: string;
  readonly sent: number;
  readonly replies: number;
  readonly approved: number;
  readonly declined: Record<string, number>;
  readonly timeouts: number;
  readonly elapsedMs: number;
  /** Approved replies per second over the phase. */
  readonly settledPerS: number;
  readonly rttP50Ms: number;
  readonly rttP90Ms: number;
  readonly rttP99Ms: number;
  readonly rttMaxMs: number;
  /** Replies whose hub signature was checked (a sample) and how many failed. */
  readonly signatureChecked: number;
  readonly signatureBad: number;
  /** CPU the generator process used during the phase, in % of one core. */
  readonly generatorCpuPercent: number;
  /** Open loop: how late the generator sent after the scheduled time (counted in the RTT). */
  readonly sendLagMsP50: number;
  readonly sendLagMsP99: number;
  /** With `trace`: every answered request. */
  readonly timings?: RequestTiming[];
}

export type ToGenerator = { readonly cmd: 'phase'; readonly phase: Phase } | { readonly cmd: 'exit' };
export type FromGenerator =
  | { readonly event: 'ready'; readonly connectMs: number }
  | { readonly event: 'result'; readonly result: PhaseResult }
  | { readonly event: 'error'; readonly message: string };
