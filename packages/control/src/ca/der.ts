/**
 * A small, strict DER reader and writer: just enough ASN.1 to read CSRs and CA certificates byte-exactly and to
 * write certificates. Strict on purpose: the CA reads hostile input, so only definite, minimal lengths are
 * accepted, nesting is bounded, and every value is a slice of the input (what was signed is what is verified).
 */

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export const TAG = Object.freeze({
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
});

/** One TLV: `tag` is the whole identifier octet (class, constructed bit and number); low-tag-number form only. */
export interface Tlv {
  readonly tag: number;
  /** The whole encoding (header and content). */
  readonly raw: Buffer;
  /** The content octets. */
  readonly content: Buffer;
}

const MAX_DEPTH = 32;

/** Reads exactly one TLV at `offset`; returns it and the offset after it. */
export function readTlv(buf: Buffer, offset = 0): { tlv: Tlv; next: number } {
  if (offset + 2 > buf.length) throw new DerError('truncated');
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported');
  let len = buf[offset + 1];
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite length is not DER');
    if (n > 4) throw new DerError('length too large');
    if (offset + 2 + n > buf.length) throw new DerError('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i];
    if (buf[offset + 2] === 0 || len < 0x80) throw new DerError('non-minimal length');
    header += n;
  }
  const end = offset + header + len;
  if (end > buf.length) throw new DerError('truncated value');
  return {
    tlv: { tag, raw: buf.subarray(offset, end), content: buf.subarray(offset + header, end) },
    next: end,
  };
}

/** Parses a buffer that must hold exactly one TLV. */
export function parseOne(buf: Buffer): Tlv {
  const { tlv, next } = readTlv(buf, 0);
  if (next !== buf.length) throw new DerError('trailing data');
  return tlv;
}

/** The children of a constructed TLV, in order. */
export function children(tlv: Tlv, depth = 0): Tlv[] {
  if (depth > MAX_DEPTH) throw new DerError('nested too deeply');
  if ((tlv.tag & 0x20) === 0) throw new DerError(`tag 0x${tlv.tag.toString(16)} is not constructed`);
  const out: Tlv[] = [];
  let off = 0;
  while (off < tlv.content.length) {
    const { tlv: child, next } = readTlv(tlv.content, off);
    out.push(child);
    off = next;
  }
  return out;
}

export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (!tlv) throw new DerError(`${what}: missing`);
  if (tlv.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  return tlv;
}

export function decodeOid(content: Buffer): string {
  if (content.length === 0) throw new DerError('empty OID');
  const parts: number[] = [];
  let value = 0;
  for (let i = 0; i < content.length; i++) {
    const b = content[i];
    if (value === 0 && b === 0x80) throw new DerError('non-minimal OID');
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 256) throw new DerError('OID arc too large');
    if ((b & 0x80) === 0) {
      if (parts.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        parts.push(first, value - first * 40);
      } else {
        parts.push(value);
      }
      value = 0;
    } else if (i === content.length - 1) {
      throw new DerError('truncated OID');
    }
  }
  return parts.join('.');
}

export function readBoolean(tlv: Tlv): boolean {
  expectTag(tlv, TAG.BOOLEAN, 'BOOLEAN');
  if (tlv.content.length !== 1) throw new DerError('BOOLEAN must be one octet');
  return tlv.content[0] !== 0;
}

/** A BIT STRING's bits as bytes, with the count of unused trailing bits. */
export function readBitString(tlv: Tlv): { unused: number; bytes: Buffer } {
  expectTag(tlv, TAG.BIT_STRING, 'BIT STRING');
  if (tlv.content.length === 0) throw new DerError('empty BIT STRING');
  const unused = tlv.content[0];
  if (unused > 7 || (unused > 0 && tlv.content.length === 1)) throw new DerError('bad BIT STRING padding');
  return { unused, bytes: tlv.content.subarray(1) };
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

function lengthBytes(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  const bytes: number[] = [];
  for (let v = len; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(TAG.SEQUENCE, ...items);
export const set = (...items: Buffer[]): Buffer => tlv(TAG.SET, ...items);
export const nullValue = (): Buffer => Buffer.from([TAG.NULL, 0]);
export const bool = (v: boolean): Buffer => Buffer.from([TAG.BOOLEAN, 1, v ? 0xff : 0]);
export const octets = (b: Buffer): Buffer => tlv(TAG.OCTET_STRING, b);
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
/** Context-specific tag `[n]`; constructed (EXPLICIT) when `constructed`. */
export const ctx = (n: number, constructed: boolean, ...content: Buffer[]): Buffer =>
  tlv(0x80 | (constructed ? 0x20 : 0) | n, ...content);

/** A non-negative INTEGER from big-endian magnitude bytes (a 0x00 is prefixed when the top bit is set). */
export function uint(magnitude: Buffer): Buffer {
  let m = magnitude;
  while (m.length > 1 && m[0] === 0 && (m[1] & 0x80) === 0) m = m.subarray(1);
  if (m.length === 0) m = Buffer.from([0]);
  if (m[0] & 0x80) m = Buffer.concat([Buffer.from([0]), m]);
  return tlv(TAG.INTEGER, m);
}

export function int(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  do {
    bytes.unshift(v & 0xff);
    v = Math.floor(v / 256);
  } while (v > 0);
  return uint(Buffer.from(bytes));
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [];
  const push = (v: number): void => {
    const tmp: number[] = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) tmp.unshift(0x80 | (x & 0x7f));
    out.push(...tmp);
  };
  push(arcs[0] * 40 + arcs[1]);
  for (const a of arcs.slice(2)) push(a);
  return tlv(TAG.OID, Buffer.from(out));
}

/** A BIT STRING of whole octets (no unused bits). */
export const bitString = (bytes: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.from([0]), bytes);

/** A named-bit BIT STRING (keyUsage): `bits` are bit numbers, 0 = most significant; trailing zero bits dropped. */
export function namedBits(bits: number[]): Buffer {
  const max = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(max / 8) + 1);
  for (const b of bits) bytes[Math.floor(b / 8)] |= 0x80 >> b % 8;
  let unused = 0;
  const last = bytes[bytes.length - 1];
  while (unused < 7 && (last & (1 << unused)) === 0) unused++;
  return tlv(TAG.BIT_STRING, Buffer.from([unused]), bytes);
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). Seconds precision. */
export function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${digits.slice(2)}Z`, 'ascii'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${digits}Z`, 'ascii'));
}

export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/**
 * Every PEM block in `text` with its label, decoded. Malformed base64 or an unterminated block throws.
 * Linear in the input (plain `indexOf` scans, no backtracking regex): the CA reads hostile PEM.
 */
export function pemBlocks(text: string): Array<{ label: string; der: Buffer }> {
  const out: Array<{ label: string; der: Buffer }> = [];
  let pos = 0;
  for (;;) {
    const begin = text.indexOf('-----BEGIN ', pos);
    if (begin < 0) break;
    const labelEnd = text.indexOf('-----', begin + 11);
    if (labelEnd < 0) throw new DerError('unterminated PEM header');
    const label = text.slice(begin + 11, labelEnd);
    if (!/^[A-Z0-9 ]{1,40}$/.test(label)) throw new DerError('bad PEM label');
    const footer = `-----END ${label}-----`;
    const end = text.indexOf(footer, labelEnd + 5);
    if (end < 0) throw new DerError(`PEM block ${label} has no END line`);
    const body = text.slice(labelEnd + 5, end).replace(/[\r\n\t ]/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) throw new DerError(`bad base64 in PEM ${label}`);
    out.push({ label, der: Buffer.from(body, 'base64') });
    pos = end + footer.length;
  }
  return out;
}
