/**
 * Where the slowest requests of a bench phase spent their time (BENCH_MQTT_TRACE=1): the load
 * generator reports, per request, when it was due, sent and answered; the hub side records when
 * the service started and finished it and how long each awaited stage took (signature checks, the
 * engine's durable commit, the result signature). Both sides stamp performance.timeOrigin + now(),
 * which agree across processes on one machine to well under a millisecond.
 * A diagnostic: wrapping costs a little CPU, so traced runs are not the figures we report.
 */
import type { SettlementHandler } from '../hub/mqtt/types.ts';
import type { SignatureVerifier } from '../hub/verify/verifier.ts';
import type { RequestTiming } from '../simulators/load/load-plan.ts';

const REQUEST_ID = Buffer.from('"requestId":"');
const now = () => performance.timeOrigin + performance.now();
const BURST_GAP_MS = 20;

function requestIdOf(payload: Uint8Array): string {
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const at = bytes.indexOf(REQUEST_ID);
  if (at < 0) return '';
  const start = at + REQUEST_ID.length;
  return bytes.toString('latin1', start, bytes.indexOf(0x22, start));
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export class RequestTracer {
  /** Also one line per burst of slow requests. */
  readonly #verbose: boolean;

  constructor(verbose = false) {
    this.#verbose = verbose;
  }

  /** requestId → [service start, service end] (absolute ms). */
  #service = new Map<string, [number, number]>();
  #stages = new Map<string, number[]>();
  /** Per stage, [started, ms] of every call, for the per-burst lines. */
  #stageCalls = new Map<string, Array<[number, number]>>();

  reset(): void {
    this.#service = new Map();
    this.#stages = new Map();
    this.#stageCalls = new Map();
  }

  #stage(name: string, ms: number, started: number): void {
    if (this.#verbose) {
      let calls = this.#stageCalls.get(name);
      if (!calls) this.#stageCalls.set(name, (calls = []));
      calls.push([started, ms]);
    }
    let list = this.#stages.get(name);
    if (!list) this.#stages.set(name, (list = []));
    list.push(ms);
  }

  async #timed<T>(name: string, work: Promise<T>, started: number): Promise<T> {
    const value = await work;
    this.#stage(name, now() - started, started);
    return value;
  }

  /** The service as the MQTT layer sees it, with each request's start and end recorded. */
  service(inner: SettlementHandler): SettlementHandler {
    return {
      handleRequest: async (terminalId, payload) => {
        const start = now();
        const reply = await inner.handleRequest(terminalId, payload);
        this.#service.set(requestIdOf(payload), [start, now()]);
        return reply;
      },
      ...(inner.answerReceipt ? { answerReceipt: (t: string, p: Uint8Array) => inner.answerReceipt!(t, p) } : {}),
      ...(inner.announcements ? { announcements: () => inner.announcements!() } : {}),
      ...(inner.onAnnouncement ? { onAnnouncement: (cb: Parameters<NonNullable<SettlementHandler['onAnnouncement']>>[0]) => inner.onAnnouncement!(cb) } : {}),
    };
  }

  /** Signature checks and result signatures, timed per call. */
  verifier(inner: SignatureVerifier): SignatureVerifier {
    const signer = inner.resultSigner?.bind(inner);
    return {
      verifyMany: (items) => this.#timed('verify', inner.verifyMany(items), now()),
      ...(signer
        ? {
            resultSigner: (secretKey: Uint8Array) => {
              const s = signer(secretKey);
              return { signResult: (job) => this.#timed('sign', s.signResult(job), now()) };
            },
          }
        : {}),
      close: () => inner.close(),
    };
  }

  /** Any async call, e.g. the engine's submit (resolves once its batch is durable). */
  timeCalls<T>(name: string, call: (arg: T) => Promise<unknown>): (arg: T) => Promise<unknown> {
    return (arg) => this.#timed(name, call(arg), now());
  }

  /** One line: the mean split of the slowest 1 % of requests, their bursts, and each stage's p50/p99/max. */
  describe(timings: readonly RequestTiming[], gcPauses: ReadonlyArray<readonly [number, number]> = []): string {
    const rows: number[][] = [];
    for (const [requestId, due, sent, answered] of timings) {
      const service = this.#service.get(requestId);
      if (service) rows.push([answered - due, sent - due, service[0] - sent, service[1] - service[0], answered - service[1], due]);
    }
    if (rows.length === 0) return 'trace: no requests matched';
    rows.sort((a, b) => a[0]! - b[0]!);
    const tail = rows.slice(Math.floor(rows.length * 0.99));
    const mean = (i: number) => (tail.reduce((sum, r) => sum + r[i]!, 0) / tail.length).toFixed(1);
    // One stall (a GC pause, a slow fsync, the VM descheduling the hub) delays every request due
    // during it: count the slow ones' bursts, due within BURST_GAP_MS of each other.
    const bursts: Array<{ from: number; to: number; lastDue: number; rows: number[][] }> = [];
    for (const r of [...tail].sort((a, b) => a[5]! - b[5]!)) {
      const last = bursts.at(-1);
      if (last && r[5]! - last.lastDue <= BURST_GAP_MS) {
        last.to = Math.max(last.to, r[5]! + r[0]!);
        last.lastDue = r[5]!;
        last.rows.push(r);
      } else bursts.push({ from: r[5]!, to: r[5]! + r[0]!, lastDue: r[5]!, rows: [r] });
    }
    // A burst is the GC's when one of the hub's main-thread pauses fell between its first request's due time and its last answer.
    const gcIn = (b: { from: number; to: number }) => gcPauses.filter(([s, e]) => s < b.to && e > b.from);
    const withGc = bursts.filter((b) => gcIn(b).length > 0).length;
    // No spread into Math.min: a saturated phase has tens of thousands of rows.
    const phaseStart = this.#verbose ? rows.reduce((min, r) => Math.min(min, r[5]!), Infinity) : 0;
    const perBurst = this.#verbose
      ? bursts.map((b) => {
          const m = (i: number) => (b.rows.reduce((sum, r) => sum + r[i]!, 0) / b.rows.length).toFixed(1);
          const gc = gcIn(b).map(([s, e]) => (e - s).toFixed(1));
          const stageMeans = [...this.#stageCalls].map(([name, calls]) => {
            const inside = calls.filter(([at]) => at >= b.from && at <= b.to);
            return inside.length === 0 ? '' : ` ${name} ${(inside.reduce((sum, [, ms]) => sum + ms, 0) / inside.length).toFixed(1)}`;
          });
          return `\n#       burst at +${((b.from - phaseStart) / 1000).toFixed(2)} s: ${b.rows.length} requests, rtt max ${Math.max(...b.rows.map((r) => r[0]!)).toFixed(1)} = send lag ${m(1)} + to the service ${m(2)} + in the service ${m(3)} + reply ${m(4)} ms${gc.length > 0 ? `; GC ${gc.join(', ')} ms` : ''}; stage means:${stageMeans.join('')}`;
        })
      : [];
    const stages = [...this.#stages].map(([name, ms]) => {
      const sorted = [...ms].sort((a, b) => a - b);
      return `${name} ${quantile(sorted, 0.5).toFixed(2)}/${quantile(sorted, 0.99).toFixed(1)}/${sorted.at(-1)!.toFixed(1)}`;
    });
    return `trace: slowest 1 % (${tail.length} in ${bursts.length} bursts, ${withGc} of them across a hub GC pause, rtt ${mean(0)} ms) = send lag ${mean(1)} + to the service ${mean(2)} + in the service ${mean(3)} + reply ${mean(4)} ms (means); stage p50/p99/max ms: ${stages.join(', ')}${perBurst.join('')}`;
  }
}
