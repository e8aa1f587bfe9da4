/**
 * Wraps the hub's settlement handler (the object hub/mqtt hands every request to) so the
 * dashboard sees live throughput, latency and the latest results, with the terminal that sent
 * them. Latency is measured at the hub: request bytes in → signed reply bytes out.
 * It reads the reply the hub already signed; it never changes a byte of it.
 */
import type { SettlementHandler } from '../mqtt/types.ts';
import type { LiveMeter } from './live-meter.ts';

interface ReplyView {
  type?: string;
  body?: { requestId?: string; status?: string; code?: string; amountMinor?: number; currency?: string; time?: number };
}

function opTypeOf(payload: Uint8Array): string {
  try {
    const msg = JSON.parse(Buffer.from(payload).toString('utf8')) as { body?: { op?: { type?: unknown } } };
    return typeof msg.body?.op?.type === 'string' ? msg.body.op.type : 'request';
  } catch {
    return 'request';
  }
}

export function instrumentHandler(handler: SettlementHandler, meter: LiveMeter, clock: () => number = Date.now): SettlementHandler {
  const wrapped: SettlementHandler = {
    async handleRequest(terminalId, payload) {
      const startedMs = performance.now();
      const reply = await handler.handleRequest(terminalId, payload);
      const latencyMs = performance.now() - startedMs;
      let view: ReplyView = {};
      try {
        view = JSON.parse(Buffer.from(reply).toString('utf8')) as ReplyView;
      } catch {
        // Not JSON: still count it as a declined answer.
      }
      const nowMs = clock();
      const body = view.body ?? {};
      const approved = view.type === 'settlement.result' && body.status === 'approved';
      const code = approved ? null : (body.code ?? (view.type === 'error' ? 'ERROR' : 'UNKNOWN'));
      meter.record(nowMs, latencyMs, approved ? 'approved' : 'declined', code);
      meter.remember({
        requestId: body.requestId ?? '–',
        kind: opTypeOf(payload),
        status: approved ? 'approved' : 'declined',
        code,
        amountMinor: typeof body.amountMinor === 'number' ? body.amountMinor : 0,
        currency: typeof body.currency === 'string' ? body.currency : '',
        atMs: nowMs,
        terminalId,
      });
      return reply;
    },
  };
  if (handler.handleReceipt) wrapped.handleReceipt = (terminalId, payload) => handler.handleReceipt!(terminalId, payload);
  if (handler.announcements) wrapped.announcements = () => handler.announcements!();
  if (handler.onAnnouncement) wrapped.onAnnouncement = (cb) => handler.onAnnouncement!(cb);
  return wrapped;
}
