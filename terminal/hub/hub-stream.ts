// The terminal's connection to the hub's broker, for MQTT.js: plain TCP for mqtt://, TLS for
// mqtts:// (also tls:// and ssl://), TCP no-delay on both (MQTT.js never sets it; without it a
// loopback QoS 1 round trip takes 44–88 ms). The sockets are built by the same code as the hub's
// own client side (hub/mqtt/no-delay-stream.ts). Over TLS the broker's certificate is always
// verified — against `ca` when given, else Node's default CAs — and its host name is checked
// (SNI and the name check use the URL's host; an IP literal is checked against the certificate's
// IP addresses). There is deliberately no way to turn verification off.
import type { Duplex } from 'node:stream';
import { noDelayStreamBuilder, parseBrokerUrl } from '../../hub/mqtt/no-delay-stream.ts';

export interface HubTlsOptions {
  /** PEM CA certificate(s) the broker's certificate must chain to; replaces Node's defaults. */
  readonly ca?: string | Buffer;
}

/** A stream builder for `new MqttClient(…)`: called again for every (re)connection. */
export function hubStream(url: string, tls?: HubTlsOptions): () => Duplex {
  const address = parseBrokerUrl(url);
  if (!address.tls && tls?.ca !== undefined) throw new TypeError(`hubStream: a CA was given for ${url}, which is not TLS (use mqtts://)`);
  // Only `ca` is passed on: servername and rejectUnauthorized keep their verifying defaults.
  return noDelayStreamBuilder(url, tls?.ca !== undefined ? { ca: tls.ca } : {});
}
