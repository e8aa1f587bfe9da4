/**
 * Whether a host (a URL's hostname, a listen address) is reachable only from this machine: what
 * decides if plain MQTT is a warning. A name other than `localhost` is not resolved, so it counts
 * as the network.
 */
import ipaddr from 'ipaddr.js';

export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host; // URL's IPv6 form
  if (bare === 'localhost') return true;
  return ipaddr.isValid(bare) && ipaddr.process(bare).range() === 'loopback';
}
