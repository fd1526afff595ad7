/**
 * A small DNS wire codec (RFC 1035, AAAA from RFC 3596): enough for a forwarding, caching proxy that answers A,
 * AAAA and CNAME itself.
 *
 * Reading handles every record type (rdata kept raw, with its offset so compressed names inside it can be read
 * from the whole message), name compression pointers (with loop protection) and the TTL offsets a cache needs to
 * rewrite TTLs in place. Writing emits uncompressed names. Malformed input throws `TRELLIS_ERR_DNS_DECODE`.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { TrellisError } from '@trellis/api';

export const RR_TYPE = Object.freeze({ A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, OPT: 41, ANY: 255 });
export const RR_CLASS_IN = 1;
export const RCODE = Object.freeze({ NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 });

export interface DnsHeader {
  readonly id: number;
  /** true for a response. */
  readonly qr: boolean;
  readonly opcode: number;
  readonly aa: boolean;
  readonly tc: boolean;
  readonly rd: boolean;
  readonly ra: boolean;
  readonly rcode: number;
}

export interface DnsQuestion {
  /** Lower-case, no trailing dot; the root is ''. */
  readonly name: string;
  /** The name with the case the client sent (answers echo it, for clients that randomize case, "0x20"). */
  readonly asSent?: string;
  readonly type: number;
  readonly class: number;
}

export interface DnsRecord {
  readonly name: string;
  readonly type: number;
  readonly class: number;
  readonly ttl: number;
  /** Raw rdata. */
  readonly data: Uint8Array;
  /** Offsets in the message, for in-place TTL rewrites and reading compressed names in rdata. */
  readonly ttlOffset: number;
  readonly dataOffset: number;
}

export interface DnsMessage {
  readonly header: DnsHeader;
  readonly questions: readonly DnsQuestion[];
  readonly answers: readonly DnsRecord[];
  readonly authorities: readonly DnsRecord[];
  readonly additionals: readonly DnsRecord[];
}

const decodeError = (message: string): TrellisError => new TrellisError('TRELLIS_ERR_DNS_DECODE', `malformed DNS message: ${message}`);

/**
 * Reads a possibly compressed name at `offset`: `name` lower-cased, `asSent` as written; `next` is the offset after
 * the name's in-place bytes.
 */
export function readName(buf: Uint8Array, offset: number): { name: string; asSent: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  let jumps = 0;
  let length = 0;
  for (;;) {
    if (pos >= buf.length) throw decodeError('name runs past the end');
    const len = buf[pos]!;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) throw decodeError('truncated compression pointer');
      if (++jumps > 64) throw decodeError('compression pointer loop');
      if (next < 0) next = pos + 2;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if ((len & 0xc0) !== 0) throw decodeError(`bad label type 0x${len.toString(16)}`);
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if (pos + 1 + len > buf.length) throw decodeError('label runs past the end');
    length += len + 1;
    if (length > 255) throw decodeError('name longer than 255 bytes');
    labels.push(Buffer.from(buf.subarray(pos + 1, pos + 1 + len)).toString('latin1'));
    pos += 1 + len;
  }
  const asSent = labels.join('.');
  return { name: asSent.toLowerCase(), asSent, next };
}

function u16(buf: Uint8Array, o: number): number {
  if (o + 2 > buf.length) throw decodeError('truncated');
  return (buf[o]! << 8) | buf[o + 1]!;
}

function u32(buf: Uint8Array, o: number): number {
  if (o + 4 > buf.length) throw decodeError('truncated');
  return ((buf[o]! << 24) >>> 0) + ((buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!);
}

export function parseHeader(buf: Uint8Array): DnsHeader {
  if (buf.length < 12) throw decodeError(`${buf.length} bytes is shorter than a header`);
  const flags = u16(buf, 2);
  return {
    id: u16(buf, 0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
  };
}

export function parseMessage(buf: Uint8Array): DnsMessage {
  const header = parseHeader(buf);
  const counts = [u16(buf, 4), u16(buf, 6), u16(buf, 8), u16(buf, 10)] as const;
  let pos = 12;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < counts[0]; i++) {
    const { name, asSent, next } = readName(buf, pos);
    questions.push({ name, asSent, type: u16(buf, next), class: u16(buf, next + 2) });
    pos = next + 4;
  }
  const sections: DnsRecord[][] = [[], [], []];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s + 1]!; i++) {
      const { name, next } = readName(buf, pos);
      const rdlength = u16(buf, next + 8);
      const dataOffset = next + 10;
      if (dataOffset + rdlength > buf.length) throw decodeError('rdata runs past the end');
      sections[s]!.push({ name, type: u16(buf, next), class: u16(buf, next + 2), ttl: u32(buf, next + 4), data: buf.subarray(dataOffset, dataOffset + rdlength), ttlOffset: next + 4, dataOffset });
      pos = dataOffset + rdlength;
    }
  }
  return { header, questions, answers: sections[0]!, authorities: sections[1]!, additionals: sections[2]! };
}

/** The text form of A, AAAA and CNAME/NS/PTR rdata (names read from the whole message); undefined for others. */
export function recordValue(msg: Uint8Array, r: DnsRecord): string | undefined {
  if (r.type === RR_TYPE.A && r.data.length === 4) return [...r.data].join('.');
  if (r.type === RR_TYPE.AAAA && r.data.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((r.data[i]! << 8) | r.data[i + 1]!).toString(16));
    // WHATWG URL parsing gives the canonical (RFC 5952) text form.
    return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
  }
  if (r.type === RR_TYPE.CNAME || r.type === RR_TYPE.NS || r.type === RR_TYPE.PTR) return readName(msg, r.dataOffset).name;
  return undefined;
}

/** SOA `minimum` (the negative-caching TTL, RFC 2308) of an SOA record. */
export function soaMinimum(msg: Uint8Array, r: DnsRecord): number {
  const mname = readName(msg, r.dataOffset);
  const rname = readName(msg, mname.next);
  return u32(msg, rname.next + 16);
}

// ---- writing ----

export interface RecordToWrite {
  readonly name: string;
  readonly type: number;
  readonly ttl: number;
  /** An IP for A/AAAA, a name for CNAME, or raw rdata. */
  readonly data: string | Uint8Array;
}

export interface MessageToWrite {
  readonly id: number;
  readonly qr?: boolean;
  readonly opcode?: number;
  readonly aa?: boolean;
  readonly tc?: boolean;
  readonly rd?: boolean;
  readonly ra?: boolean;
  readonly rcode?: number;
  readonly questions: readonly DnsQuestion[];
  readonly answers?: readonly RecordToWrite[];
}

export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const parts: Buffer[] = [];
  if (trimmed !== '') {
    for (const label of trimmed.split('.')) {
      const b = Buffer.from(label, 'latin1');
      if (b.length === 0 || b.length > 63) throw new TrellisError('TRELLIS_ERR_DNS_ENCODE', `bad label "${label}" in "${name}"`);
      parts.push(Buffer.from([b.length]), b);
    }
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function ipv6Bytes(ip: string): Buffer {
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const b = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, v4.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function rdata(r: RecordToWrite): Buffer {
  if (typeof r.data !== 'string') return Buffer.from(r.data);
  if (r.type === RR_TYPE.A) {
    if (!isIPv4(r.data)) throw new TrellisError('TRELLIS_ERR_DNS_ENCODE', `A record needs an IPv4 address, got "${r.data}"`);
    return Buffer.from(r.data.split('.').map(Number));
  }
  if (r.type === RR_TYPE.AAAA) {
    if (!isIPv6(r.data)) throw new TrellisError('TRELLIS_ERR_DNS_ENCODE', `AAAA record needs an IPv6 address, got "${r.data}"`);
    return ipv6Bytes(r.data);
  }
  return encodeName(r.data);
}

export function encodeMessage(m: MessageToWrite): Buffer {
  const answers = m.answers ?? [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(m.id & 0xffff, 0);
  const flags =
    (m.qr ? 0x8000 : 0) | (((m.opcode ?? 0) & 0xf) << 11) | (m.aa ? 0x0400 : 0) | (m.tc ? 0x0200 : 0) | (m.rd ? 0x0100 : 0) | (m.ra ? 0x0080 : 0) | ((m.rcode ?? 0) & 0xf);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(m.questions.length, 4);
  header.writeUInt16BE(answers.length, 6);
  const parts: Buffer[] = [header];
  for (const q of m.questions) {
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(q.type, 0);
    tail.writeUInt16BE(q.class, 2);
    parts.push(encodeName(q.asSent ?? q.name), tail);
  }
  for (const r of answers) {
    const data = rdata(r);
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(r.type, 0);
    fixed.writeUInt16BE(RR_CLASS_IN, 2);
    fixed.writeUInt32BE(Math.max(0, Math.floor(r.ttl)) >>> 0, 4);
    fixed.writeUInt16BE(data.length, 8);
    parts.push(encodeName(r.name), fixed, data);
  }
  return Buffer.concat(parts);
}
