/** A CSV field: its text, or null for an empty unquoted field (`a,,b`), which files use for a missing value; `""` is the empty string. */
export type CsvField = string | null;

/** Called once per record with its first `count` fields; the array may be reused, so copy what you keep. `line` is where the record starts, from 1. */
export type CsvRecordHandler = (fields: readonly CsvField[], count: number, line: number) => void;

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

/** One record may not outgrow this; past it the cause is nearly always a quote that is never closed. */
const MAX_RECORD_CHARS = 16 * 1024 * 1024;

export class CsvSyntaxError extends Error {
  readonly line: number;
  readonly reason: string;

  constructor(line: number, reason: string) {
    super(`line ${line}: ${reason}`);
    this.name = 'CsvSyntaxError';
    this.line = line;
    this.reason = reason;
  }
}

/**
 * RFC 4180, incrementally: text is pushed as it is read, records are handed
 * out as soon as they are complete, and only an unfinished record is kept
 * between pushes. Fields are separated by commas; a field that starts with a
 * quote runs to the closing quote, may hold commas, line breaks and doubled
 * quotes (`""` for one), and must be followed by a comma or a line break. A
 * quote inside an unquoted field is taken literally, as most writers and
 * readers do. Records end at LF, CRLF or a lone CR; blank lines are skipped.
 * A UTF-8 byte order mark at the start is dropped. Field counts are not
 * checked here: the header is the caller's business.
 */
export class CsvParser {
  readonly #onRecord: CsvRecordHandler;
  /** The unfinished record at the end of the text pushed so far. */
  #rest = '';
  /** The line the next record starts on. */
  #line = 1;
  #started = false;
  readonly #fields: CsvField[] = [];

  constructor(onRecord: CsvRecordHandler) {
    this.#onRecord = onRecord;
  }

  push(text: string): void {
    if (text === '') return;
    if (!this.#started) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.#parse(this.#rest === '' ? text : this.#rest + text, false);
    if (this.#rest.length > MAX_RECORD_CHARS) {
      throw new CsvSyntaxError(this.#line, `a record longer than ${MAX_RECORD_CHARS} characters starts here (a quote that is never closed?)`);
    }
  }

  /** The text is complete: the last record needs no line break. */
  end(): void {
    const rest = this.#rest;
    this.#rest = '';
    this.#parse(rest, true);
  }

  #parse(text: string, final: boolean): void {
    const length = text.length;
    let at = 0;
    // The next quote and carriage return, searched once per block rather than once per line.
    let nextQuote = text.indexOf('"');
    let nextCr = text.indexOf('\r');
    while (at < length) {
      let lineFeed = text.indexOf('\n', at);
      if (lineFeed === -1) {
        if (!final) return this.#keep(text, at);
        lineFeed = length;
      }
      if (nextQuote !== -1 && nextQuote < at) nextQuote = text.indexOf('"', at);
      if (nextCr !== -1 && nextCr < at) nextCr = text.indexOf('\r', at);
      const end = lineFeed > at && text.charCodeAt(lineFeed - 1) === CR ? lineFeed - 1 : lineFeed;
      if ((nextQuote === -1 || nextQuote > end) && (nextCr === -1 || nextCr >= end)) {
        // The common line, without quotes or a lone CR: indexOf finds the commas natively, twice as fast as a
        // charCodeAt scan here (and faster than split, which builds an array per line).
        if (end > at) {
          const fields = this.#fields;
          let count = 0;
          let from = at;
          for (let comma = text.indexOf(',', from); comma !== -1 && comma < end; comma = text.indexOf(',', from)) {
            fields[count++] = comma === from ? null : text.slice(from, comma);
            from = comma + 1;
          }
          fields[count++] = end === from ? null : text.slice(from, end);
          this.#onRecord(fields, count, this.#line);
        }
        this.#line++;
        at = lineFeed + 1;
        continue;
      }
      const next = this.#parseRecord(text, at, final);
      if (next === -1) return this.#keep(text, at);
      at = next;
    }
    this.#rest = '';
  }

  /**
   * One record from `start`, field by field; it may span lines inside quotes.
   * Returns where the next record starts, or -1 when the text ends first
   * and more is to come.
   */
  #parseRecord(text: string, start: number, final: boolean): number {
    const length = text.length;
    const fields = this.#fields;
    const recordLine = this.#line;
    let line = recordLine;
    let count = 0;
    let i = start;
    for (;;) {
      let value: CsvField;
      if (i < length && text.charCodeAt(i) === QUOTE) {
        let from = i + 1;
        let unescaped = '';
        for (;;) {
          const quote = text.indexOf('"', from);
          if (quote === -1 || (quote + 1 === length && !final)) {
            if (!final) return -1;
            throw new CsvSyntaxError(line, 'a quoted field is never closed');
          }
          if (text.charCodeAt(quote + 1) === QUOTE) {
            unescaped += text.slice(from, quote + 1);
            from = quote + 2;
            continue;
          }
          value = unescaped + text.slice(from, quote);
          line += countLineFeeds(value);
          i = quote + 1;
          break;
        }
      } else {
        let end = i;
        while (end < length) {
          const code = text.charCodeAt(end);
          if (code === COMMA || code === LF || code === CR) break;
          end++;
        }
        if (end === length && !final) return -1;
        value = end === i ? null : text.slice(i, end);
        i = end;
      }
      fields[count++] = value;
      if (i === length) break;
      const code = text.charCodeAt(i);
      if (code === COMMA) {
        i++;
        continue;
      }
      if (code === LF) {
        i++;
        line++;
        break;
      }
      if (code === CR) {
        if (i + 1 === length && !final) return -1;
        i += text.charCodeAt(i + 1) === LF ? 2 : 1;
        line++;
        break;
      }
      throw new CsvSyntaxError(line, `unexpected ${JSON.stringify(text[i])} after a closing quote (a quote inside a quoted field is written "")`);
    }
    this.#line = line;
    if (count > 1 || fields[0] !== null) this.#onRecord(fields, count, recordLine);
    return i;
  }

  #keep(text: string, start: number): void {
    this.#rest = text.slice(start);
  }
}

function countLineFeeds(text: string): number {
  let count = 0;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) count++;
  return count;
}
