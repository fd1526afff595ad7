/**
 * A TTL cache of upstream answers, keyed by question (name, type, class).
 *
 * What is cached: NOERROR answers with records (for the smallest TTL among the answer records) and negative
 * answers, NXDOMAIN or NOERROR without answers, for the SOA's negative TTL (min of the SOA record's TTL and its
 * `minimum`, RFC 2308); answers without a TTL to go by, truncated answers and errors are not cached. A hit returns
 * a copy with the client's id and every TTL reduced by the time spent in the cache. The clock is injected; size is
 * bounded (oldest entries go first).
 */
import { encodeName, parseMessage, RCODE, RR_TYPE, soaMinimum, type DnsQuestion } from './wire.js';

interface Entry {
  readonly bytes: Buffer;
  readonly storedAt: number;
  readonly expiresAt: number;
}

export const cacheKey = (q: DnsQuestion): string => `${q.name}|${q.type}|${q.class}`;

/** Seconds the response may be cached, or 0 when it must not be. */
export function cacheableTtl(bytes: Uint8Array): number {
  const msg = parseMessage(bytes);
  if (msg.header.tc) return 0;
  if (msg.header.rcode === RCODE.NOERROR && msg.answers.length > 0) return Math.min(...msg.answers.map((r) => r.ttl));
  if (msg.header.rcode === RCODE.NXDOMAIN || (msg.header.rcode === RCODE.NOERROR && msg.answers.length === 0)) {
    const soa = msg.authorities.find((r) => r.type === RR_TYPE.SOA);
    return soa === undefined ? 0 : Math.min(soa.ttl, soaMinimum(bytes, soa));
  }
  return 0;
}

export class DnsCache {
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;
  readonly #maxEntries: number;

  constructor(options: { readonly now: () => number; readonly maxEntries?: number }) {
    this.#now = options.now;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Stores `bytes` (an upstream response) if it is cacheable. */
  put(q: DnsQuestion, bytes: Uint8Array): void {
    const ttl = cacheableTtl(bytes);
    if (ttl <= 0) return;
    const key = cacheKey(q);
    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value as string);
    const now = this.#now();
    this.#entries.set(key, { bytes: Buffer.from(bytes), storedAt: now, expiresAt: now + ttl * 1000 });
  }

  /**
   * A fresh copy for the client's `id` and question case (`q.asSent`; compressed owner names pointing at the
   * question follow it), TTLs aged; undefined on a miss or expiry.
   */
  get(q: DnsQuestion, id: number): Buffer | undefined {
    const key = cacheKey(q);
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    const now = this.#now();
    if (now >= e.expiresAt) {
      this.#entries.delete(key);
      return undefined;
    }
    const elapsed = Math.floor((now - e.storedAt) / 1000);
    const out = Buffer.from(e.bytes);
    out.writeUInt16BE(id, 0);
    if (q.asSent !== undefined) {
      const name = encodeName(q.asSent);
      if (out.subarray(12, 12 + name.length).toString('latin1').toLowerCase() === name.toString('latin1').toLowerCase()) name.copy(out, 12);
    }
    const msg = parseMessage(out);
    for (const r of [...msg.answers, ...msg.authorities, ...msg.additionals]) {
      if (r.type !== RR_TYPE.OPT) out.writeUInt32BE(Math.max(0, r.ttl - elapsed), r.ttlOffset);
    }
    return out;
  }
}
