// Hardware in the loop: runs only when a real PN532 (HSU) is named, like serialport's TEST_PORT.
import { describe, expect, it } from 'vitest';
import { Pn532Driver } from '../pn532/pn532-driver.ts';

const port = process.env.TEST_PN532_PORT;

describe.skipIf(port === undefined)('real PN532 on TEST_PN532_PORT', () => {
  it('wakes up and reports a PN532 firmware', async () => {
    const driver = new Pn532Driver({ path: port! });
    try {
      await driver.open();
      expect((await driver.getFirmwareVersion()).ic).toBe(0x32);
    } finally {
      await driver.close();
    }
  });
});
