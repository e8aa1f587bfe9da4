/**
 * A terminal that reaches its hub over plain MQTT beyond this machine sends its broker password
 * and every request and reply (balances, statements) unencrypted: said once at start.
 */
import { isLoopbackHost } from '../../protocol/index.ts';

export function plainTransportWarning(hubUrl: string): { code: 'PLAIN_MQTT'; message: string } | undefined {
  const url = new URL(hubUrl);
  if (url.protocol !== 'mqtt:' && url.protocol !== 'tcp:') return undefined;
  if (isLoopbackHost(url.hostname)) return undefined;
  return { code: 'PLAIN_MQTT', message: `plain MQTT to ${url.host}: the broker password and every request and reply cross the network unencrypted; use mqtts:// (with hub.caFile for a self-signed broker certificate)` };
}
