/** A terminal's line is redrawn at most this often; a log gets a line this often. */
const TERMINAL_REDRAW_MS = 200;
const LOG_LINE_MS = 10_000;

const COUNT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 83 → "1:23", 4000 → "1:06:40". */
function clock(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
}

/**
 * Progress of a long command on stderr: rows done (of how many, when the
 * input says), rows per second since the start, and the time left at that
 * rate when the total is known. On a terminal one line is redrawn in place;
 * on anything else (a log, a pipe) a line is added every `logEveryMs` (10 s
 * unless told), so a log is not flooded.
 */
export class ProgressMeter {
  private readonly out: NodeJS.WritableStream;
  private readonly terminal: boolean;
  private readonly label: string;
  private readonly total: number | undefined;
  private readonly everyMs: number;
  private readonly started: number;
  private lastShown: number;
  private shown = false;

  /** `startedAt`: the performance.now() the rate counts from, when the work began before the meter. */
  constructor(out: NodeJS.WritableStream, label: string, total: number | undefined, options: { readonly logEveryMs?: number; readonly startedAt?: number } = {}) {
    this.out = out;
    this.terminal = (out as { isTTY?: boolean }).isTTY === true;
    this.label = label;
    this.total = total;
    this.everyMs = this.terminal ? TERMINAL_REDRAW_MS : (options.logEveryMs ?? LOG_LINE_MS);
    this.started = options.startedAt ?? performance.now();
    this.lastShown = this.started;
  }

  update(done: number): void {
    const now = performance.now();
    if (now - this.lastShown < this.everyMs) return;
    this.lastShown = now;
    const rate = done / ((now - this.started) / 1000);
    let line = `${this.label}: ${COUNT.format(done)}`;
    if (this.total !== undefined && this.total > 0) line += ` of ${COUNT.format(this.total)} rows (${Math.floor((100 * done) / this.total)}%)`;
    else line += ' rows';
    line += `, ${COUNT.format(rate)} rows/s`;
    if (this.total !== undefined && rate > 0) line += `, ETA ${clock((this.total - done) / rate)}`;
    this.out.write(this.terminal ? `\r\x1b[K${line}` : `${line}\n`);
    this.shown = true;
  }

  /** Ends a redrawn line, so what follows starts on a line of its own. */
  finish(): void {
    if (this.terminal && this.shown) this.out.write('\n');
  }
}
