// The receipt printer: one interface, a real implementation per link (serial-receipt-printer.ts,
// device-receipt-printer.ts) and a simulated one (simulators/virtual-io/memory-receipt-printer.ts),
// all passing receipt-printer.contract.ts. A slip is lines of text; the bytes are ESC/POS.
import { HardwareError } from '../errors.ts';

export interface ReceiptPrinter {
  /**
   * Prints one slip (its lines, fed and cut). Slips print one at a time in call order. Rejects with
   * `PRINTER_WRITE_FAILED` (the link failed; the next print tries to reopen it) or `PRINTER_CLOSED`;
   * resolves once the bytes were handed to the device (its buffer: the paper may still be moving).
   */
  print(lines: readonly string[]): Promise<void>;
  /** Prints the slips already accepted, then closes the link. `print` after it rejects `PRINTER_CLOSED`. */
  close(): Promise<void>;
}

// ---- ESC/POS (Epson "ESC/POS Command Reference for TM printers"; the 58 mm clones follow it) ----

/** ESC @ — Initialize printer: clears the print buffer, modes back to their power-on values. */
export const ESC_INIT = Uint8Array.of(0x1b, 0x40);
/**
 * ESC t n — Select character code table, n = 0: Page 0, PC437 (USA, Standard Europe). Page 0 is
 * the one table every ESC/POS printer has (PC858 with "€" is page 19 on Epson, another number or
 * absent on the clones), and ESC @ restores the table set by the memory switches, not necessarily 0.
 */
export const ESC_CODE_TABLE_PC437 = Uint8Array.of(0x1b, 0x74, 0x00);
/** ESC R n — Select an international character set, n = 0: U.S.A. (so 0x23 prints "#", 0x24 "$"). */
export const ESC_CHARSET_USA = Uint8Array.of(0x1b, 0x52, 0x00);
/** LF — Print and line feed. */
export const LF = 0x0a;
/** ESC d n — Print and feed n lines. */
export const escFeedLines = (n: number): Uint8Array => Uint8Array.of(0x1b, 0x64, n);
/**
 * GS V m n, function B, m = 66 — Feed paper to (cutting position + n × vertical motion unit) and
 * execute a partial cut (one point left uncut). n = 0: the last line just past the cutter. A
 * printer without a cutter ignores it; the feed before it (ESC d) lets the slip be torn off.
 */
export const GS_PARTIAL_CUT = Uint8Array.of(0x1d, 0x56, 0x42, 0x00);

/** Lines fed after a slip before the cut (ESC d n): ≈ 12 mm at the default line spacing. */
export const DEFAULT_FEED_LINES = 3;

/** Code page 437, bytes 0x80..0xFF (IBM PC; the printer's Page 0). */
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';
const CP437 = new Map<string, number>([...CP437_HIGH].map((ch, i) => [ch, 0x80 + i]));

/** Characters PC437 lacks, written as what the paper can show ("—" as "-", "€" as "EUR"). */
const TRANSLITERATE: Readonly<Record<string, string>> = {
  '\u2014': '-', '\u2013': '-', '\u2012': '-', '\u2015': '-', '\u2010': '-', '\u2011': '-', '\u2212': '-',
  '\u2018': "'", '\u2019': "'", '\u201a': "'", '\u2032': "'", '\u201c': '"', '\u201d': '"', '\u201e': '"', '\u2033': '"',
  '\u2026': '...', '\u20ac': 'EUR', '\u2022': '*', '\u00d7': 'x', '\u2122': 'TM', '\u00a9': '(C)', '\u00ae': '(R)',
  '\u2192': '->', '\u2190': '<-', '\u00a0': ' ', '\u202f': ' ', '\u2009': ' ', '\t': ' ',
};

/** One character as PC437 bytes: itself, a transliteration, the letter without its accent, or "?". */
function encodeChar(ch: string, out: number[]): void {
  const cp = ch.codePointAt(0)!;
  if (cp >= 0x20 && cp < 0x7f) return void out.push(cp);
  const t = TRANSLITERATE[ch];
  if (t !== undefined) {
    for (const c of t) encodeChar(c, out);
    return;
  }
  const b = CP437.get(ch);
  if (b !== undefined) return void out.push(b);
  // "ő" → "o", "č" → "c": the base letters of a decomposition, when they are printable.
  const base = ch.normalize('NFD').replace(/\p{M}/gu, '');
  if (base !== ch && base.length > 0 && [...base].every((c) => (c.codePointAt(0)! >= 0x20 && c.codePointAt(0)! < 0x7f) || CP437.has(c))) {
    for (const c of base) encodeChar(c, out);
    return;
  }
  // Control characters (an ESC inside a slip would be a printer command), and the rest.
  out.push(0x3f);
}

/** A line as PC437 bytes (no LF). Never emits a control byte. */
export function encodeLine(line: string): Uint8Array {
  const out: number[] = [];
  for (const ch of line.normalize('NFC')) encodeChar(ch, out);
  return Uint8Array.from(out);
}

/** What the paper shows for a line (the simulated printer keeps this). */
export function printableLine(line: string): string {
  return [...encodeLine(line)].map((b) => (b < 0x80 ? String.fromCharCode(b) : CP437_HIGH[b - 0x80]!)).join('');
}

/** Decodes PC437 bytes (0x20..0xFF) to text; a test's reader of what reached the printer. */
export function decodePc437(bytes: Uint8Array): string {
  return [...bytes].map((b) => (b < 0x80 ? String.fromCharCode(b) : CP437_HIGH[b - 0x80]!)).join('');
}

/**
 * One slip as ESC/POS: initialize, PC437, USA characters, each line + LF, feed, partial cut.
 * Initializing every slip puts a printer that was power-cycled or left mid-command by an earlier
 * failed write back into a known state.
 */
export function encodeSlip(lines: readonly string[], options: { feedLines?: number } = {}): Uint8Array {
  const feedLines = options.feedLines ?? DEFAULT_FEED_LINES;
  if (!Number.isInteger(feedLines) || feedLines < 0 || feedLines > 255) throw new RangeError(`feedLines: expected 0..255, got ${feedLines}`);
  const parts: Uint8Array[] = [ESC_INIT, ESC_CODE_TABLE_PC437, ESC_CHARSET_USA];
  for (const line of lines) {
    // A line holding a line break prints as several lines (the break itself is no command).
    for (const piece of line.split(/\r\n|\r|\n/)) parts.push(encodeLine(piece), Uint8Array.of(LF));
  }
  parts.push(escFeedLines(feedLines), GS_PARTIAL_CUT);
  return Buffer.concat(parts);
}

// ---- the link and what both real printers share ----

/** An open link to the printer (a serial port, a character device). */
export interface PrinterLink {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Opens the link; `onLost` is called if the link reports its loss by itself (serialport's 'close'). */
export type OpenPrinterLink = (onLost: (cause: unknown) => void) => Promise<PrinterLink>;

export interface LinkedPrinterOptions {
  /** Lines fed before the cut (ESC d n), default 3. */
  feedLines?: number;
  /** A slip's write (and, for a serial port, drain) must finish within this, default 10 s. */
  writeTimeoutMs?: number;
}

export const DEFAULT_WRITE_TIMEOUT_MS = 10_000;

/**
 * Opens the link once at start — failing with `PRINTER_UNAVAILABLE` (the terminal exits 69) —
 * and keeps it; a slip whose write fails (or times out) drops the link and rejects
 * `PRINTER_WRITE_FAILED`, and the next slip opens it anew (a USB printer plugged back in).
 */
export async function openLinkedPrinter(what: string, openLink: OpenPrinterLink, options: LinkedPrinterOptions = {}): Promise<ReceiptPrinter> {
  const printer = new LinkedReceiptPrinter(what, openLink, options);
  try {
    await printer.connect();
  } catch (err) {
    throw new HardwareError('PRINTER_UNAVAILABLE', `cannot open the receipt printer ${what}`, { cause: err });
  }
  return printer;
}

class LinkedReceiptPrinter implements ReceiptPrinter {
  private link: PrinterLink | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly writeTimeoutMs: number;

  constructor(
    private readonly what: string,
    private readonly openLink: OpenPrinterLink,
    private readonly options: LinkedPrinterOptions,
  ) {
    this.writeTimeoutMs = options.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    if (!(this.writeTimeoutMs > 0)) throw new RangeError(`writeTimeoutMs: expected > 0, got ${this.writeTimeoutMs}`);
  }

  async connect(): Promise<PrinterLink> {
    const link = await this.openLink(() => {
      if (this.link === link) this.link = undefined;
    });
    this.link = link;
    return link;
  }

  print(lines: readonly string[]): Promise<void> {
    if (this.closed) return Promise.reject(new HardwareError('PRINTER_CLOSED'));
    const bytes = encodeSlip(lines, this.options.feedLines === undefined ? {} : { feedLines: this.options.feedLines });
    const run = this.queue.then(() => this.send(bytes));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async send(bytes: Uint8Array): Promise<void> {
    let link = this.link;
    if (link === undefined) {
      try {
        link = await this.connect();
      } catch (err) {
        throw new HardwareError('PRINTER_WRITE_FAILED', `the receipt printer ${this.what} cannot be reopened`, { cause: err });
      }
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        link.write(bytes),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`write not done within ${this.writeTimeoutMs} ms`)), this.writeTimeoutMs))),
      ]);
    } catch (err) {
      if (this.link === link) this.link = undefined;
      link.close().catch(() => undefined);
      throw new HardwareError('PRINTER_WRITE_FAILED', `writing a slip to the receipt printer ${this.what} failed`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    const link = this.link;
    this.link = undefined;
    await link?.close();
  }
}
