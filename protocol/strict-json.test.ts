import { describe, expect, it } from 'vitest';
import { parseStrictJson } from './strict-json.ts';

describe('parseStrictJson', () => {
  it('gives what JSON.parse gives for JSON without repeated keys', () => {
    const text = '{"a": 1, "b": {"c": [1, {"d": "x"}], "e": null}, "f": -0.5}';
    expect(parseStrictJson(text)).toEqual(JSON.parse(text));
    expect(parseStrictJson('[{"a":1},{"a":2}]')).toEqual([{ a: 1 }, { a: 2 }]); // the same key in two objects is fine
  });

  it('refuses a key given twice in one object, at any depth, naming it and where', () => {
    expect(() => parseStrictJson('{"port": 1883, "port": 8883}')).toThrow(/duplicate key "port" at line 1 column 16/);
    expect(() => parseStrictJson('{"articles": [{"sku": "a",\n "priceMinor": 1,\n "priceMinor": 100}]}')).toThrow(/duplicate key "priceMinor" at line 3/);
  });

  it('refuses what is not JSON', () => {
    expect(() => parseStrictJson('{"a": 1,}')).toThrow();
    expect(() => parseStrictJson('{a: 1}')).toThrow();
    expect(() => parseStrictJson('// c\n{}')).toThrow();
  });
});
