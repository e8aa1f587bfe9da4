/**
 * Wraps the hub's settlement handler (the object hub/mqtt hands every request to) so the
 * dashboard sees live throughput and latency (the rows of recent settlements come from the hub's
 * own settlement events). Latency is measured at the hub: request bytes in → signed reply out.
 * It reads the reply the hub already signed; it never changes a byte of it.
 */
import type { SettlementHandler } from '../mqtt/types.ts';
import type { LiveMeter } from './live-meter.ts';

interface ReplyView {
  type?: string;
  body?: { status?: string; code?: string };
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
      return reply;
    },
  };
  if (handler.answerReceipt) wrapped.answerReceipt = (terminalId, payload) => handler.answerReceipt!(terminalId, payload);
  if (handler.announcements) wrapped.announcements = () => handler.announcements!();
  if (handler.onAnnouncement) wrapped.onAnnouncement = (cb) => handler.onAnnouncement!(cb);
  return wrapped;
}
