import { describe, expect, it } from 'vitest';
import { plainTransportWarning } from './plain-transport.ts';

describe('plainTransportWarning', () => {
  it('warns for plain MQTT beyond this machine, not for TLS or loopback', () => {
    expect(plainTransportWarning('mqtt://hub.example.lan:1883')).toMatchObject({ code: 'PLAIN_MQTT', message: expect.stringContaining('hub.example.lan:1883') as unknown as string });
    expect(plainTransportWarning('tcp://10.0.0.2:1883')?.code).toBe('PLAIN_MQTT');
    for (const quiet of ['mqtts://hub.example.lan:8883', 'mqtt://127.0.0.1:1883', 'mqtt://localhost:1883', 'mqtt://[::1]:1883']) expect(plainTransportWarning(quiet), quiet).toBeUndefined();
  });
});
