import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ProgressMeter } from '../../src/cli/progress-meter.js';

function capture(tty: boolean): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  Object.assign(stream, { isTTY: tty });
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { stream, text: () => text };
}

describe('ProgressMeter', () => {
  it('redraws one line on a terminal: rows of the total, rate, time left; finish ends the line', async () => {
    const { stream, text } = capture(true);
    const meter = new ProgressMeter(stream, 'strata historical', 1_000_000);
    meter.update(10);
    expect(text()).toBe('');
    await sleep(250);
    meter.update(250_000);
    meter.finish();
    expect(text()).toMatch(/^\r\x1b\[Kstrata historical: 250,000 of 1,000,000 rows \(25%\), [\d,]+ rows\/s, ETA \d+:\d\d\n$/);
  });

  it('without a total says rows and no ETA; elsewhere than a terminal it adds lines, not redraws', async () => {
    const { stream, text } = capture(false);
    const meter = new ProgressMeter(stream, 'x', undefined);
    meter.update(5);
    meter.finish();
    // A log gets a line every 10 s at most, and nothing to end.
    expect(text()).toBe('');
    const tty = capture(true);
    const unknownTotal = new ProgressMeter(tty.stream, 'x', undefined);
    await sleep(250);
    unknownTotal.update(1_234);
    expect(tty.text()).toMatch(/^\r\x1b\[Kx: 1,234 rows, [\d,]+ rows\/s$/);
  });

  it('adds log lines as often as told, with the rate counted from when the work began', async () => {
    const { stream, text } = capture(false);
    const meter = new ProgressMeter(stream, 'import', 100, { logEveryMs: 50, startedAt: performance.now() - 1_000 });
    meter.update(10);
    meter.update(15);
    expect(text()).toMatch(/^import: 10 of 100 rows \(10%\), (9|10) rows\/s, ETA 0:(08|09|10)\n$/);
    await sleep(80);
    meter.update(20);
    expect(text().split('\n')).toHaveLength(3);
  });
});
