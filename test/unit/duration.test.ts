import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/config/duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
    ['0', 0],
    ['0s', 0],
    ['90s', 90_000],
  ])('parses %s as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['5', 'a bare number other than 0'],
    ['1.5h', 'a fraction'],
    ['-1s', 'a negative duration'],
    ['1w', 'an unknown unit'],
    ['', 'the empty string'],
    [' 5s', 'leading whitespace'],
    ['5s ', 'trailing whitespace'],
    ['1h30m', 'two units'],
    ['5S', 'an upper-case unit'],
    ['ms', 'a unit without a number'],
  ])('rejects %j (%s)', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('rejects a duration whose milliseconds are not a safe integer', () => {
    expect(parseDuration('999999999999999d')).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0'],
    [500, '500ms'],
    [1_500, '1500ms'],
    [30_000, '30s'],
    [90_000, '90s'],
    [300_000, '5m'],
    [3_600_000, '1h'],
    [5_400_000, '90m'],
    [604_800_000, '7d'],
  ])('formats %d ms as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([0, 1, 999, 1_000, 1_001, 59_999, 60_000, 61_000, 3_599_000, 3_600_000, 86_399_999, 86_400_000, 2_592_000_000])(
    'round-trips %d ms through formatDuration and parseDuration',
    (ms) => {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    },
  );

  it.each(['500ms', '30s', '5m', '1h', '7d', '0'])('formats the parse of %s back to the same text', (text) => {
    expect(formatDuration(parseDuration(text)!)).toBe(text);
  });
});
