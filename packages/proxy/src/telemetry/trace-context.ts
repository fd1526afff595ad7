/**
 * Trace context propagation: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin B3 (multi-header
 * `x-b3-*` and single `b3`), read from a request and written for the next hop. Pure functions over header maps.
 *
 * Reading prefers `traceparent`, then `b3`, then `x-b3-*`. Writing sets both `traceparent` and the `x-b3-*`
 * headers (any caller of either convention downstream keeps the trace), keeps `tracestate`, and rewrites a single
 * `b3` header when the request came with one.
 */
import { randomFillSync } from 'node:crypto';

export interface SpanContext {
  /** 32 hex digits (a 64-bit B3 id is left-padded with zeros for W3C, and kept as is for B3). */
  readonly traceId: string;
  /** 16 hex digits. */
  readonly spanId: string;
  /** The parent span's id, or null for a root span. */
  readonly parentId: string | null;
  /** The sampling decision; null = none was made upstream (the receiver decides). */
  readonly sampled: boolean | null;
  /** B3 `x-b3-flags: 1` / `b3: …-d`: debug (forces sampling). */
  readonly debug: boolean;
  /** W3C `tracestate`, passed through unchanged. */
  readonly tracestate: string | null;
  /** The incoming context used the single `b3` header (it is rewritten in that form too). */
  readonly singleB3: boolean;
}

type Headers = Record<string, string | string[] | undefined>;

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '0'.repeat(32);
const ZERO16 = '0'.repeat(16);

function first(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `00-<trace-id>-<parent-id>-<flags>` (version 00; later versions are read by their first four fields). */
export function parseTraceparent(v: string): { traceId: string; spanId: string; sampled: boolean } | null {
  const parts = v.trim().toLowerCase().split('-');
  if (parts.length < 4) return null;
  const [version, traceId, spanId, flags] = parts;
  if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff' || (version === '00' && parts.length !== 4)) return null;
  if (!HEX32.test(traceId) || traceId === ZERO32 || !HEX16.test(spanId) || spanId === ZERO16 || !/^[0-9a-f]{2}$/.test(flags)) return null;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

function b3Sampled(s: string | undefined): { sampled: boolean | null; debug: boolean } {
  if (s === undefined) return { sampled: null, debug: false };
  if (s === 'd') return { sampled: true, debug: true };
  if (s === '1' || s === 'true') return { sampled: true, debug: false };
  if (s === '0' || s === 'false') return { sampled: false, debug: false };
  return { sampled: null, debug: false };
}

const isTraceId = (s: string) => HEX32.test(s) || HEX16.test(s);

/**
 * The incoming trace context, or null when the request carries none (or only a sampling decision, returned as a
 * context with empty ids so the decision is honoured: `b3: 0`, `x-b3-sampled: 0` without ids).
 */
export function extract(h: Headers): SpanContext | null {
  const tp = first(h, 'traceparent');
  const tracestate = first(h, 'tracestate') ?? null;
  if (tp) {
    const p = parseTraceparent(tp);
    // A 64-bit B3 trace id travels in traceparent left-padded; keep the B3 width when both name the same span.
    const b3Id = first(h, 'x-b3-traceid')?.toLowerCase();
    if (p && b3Id && HEX16.test(b3Id) && first(h, 'x-b3-spanid')?.toLowerCase() === p.spanId && w3cTraceId(b3Id) === p.traceId) p.traceId = b3Id;
    if (p) return { traceId: p.traceId, spanId: p.spanId, parentId: null, sampled: p.sampled, debug: false, tracestate, singleB3: false };
  }
  const single = first(h, 'b3');
  if (single) {
    const parts = single.trim().toLowerCase().split('-');
    if (parts.length === 1) {
      const s = b3Sampled(parts[0]);
      if (s.sampled !== null) return { traceId: '', spanId: '', parentId: null, sampled: s.sampled, debug: s.debug, tracestate, singleB3: true };
    } else if (parts.length >= 2 && isTraceId(parts[0]) && HEX16.test(parts[1])) {
      const s = b3Sampled(parts[2]);
      return { traceId: parts[0], spanId: parts[1], parentId: parts[3] && HEX16.test(parts[3]) ? parts[3] : null, sampled: s.sampled, debug: s.debug, tracestate, singleB3: true };
    }
  }
  const traceId = first(h, 'x-b3-traceid')?.toLowerCase();
  const spanId = first(h, 'x-b3-spanid')?.toLowerCase();
  const flags = first(h, 'x-b3-flags');
  const s = flags === '1' ? { sampled: true, debug: true } : b3Sampled(first(h, 'x-b3-sampled')?.toLowerCase());
  if (traceId && spanId && isTraceId(traceId) && HEX16.test(spanId)) {
    const parent = first(h, 'x-b3-parentspanid')?.toLowerCase();
    return { traceId, spanId, parentId: parent && HEX16.test(parent) ? parent : null, sampled: s.sampled, debug: s.debug, tracestate, singleB3: false };
  }
  if (s.sampled !== null) return { traceId: '', spanId: '', parentId: null, sampled: s.sampled, debug: s.debug, tracestate, singleB3: false };
  return null;
}

/** Random ids from a pooled buffer (one `randomFillSync` per 256 ids rather than one per id). */
export class IdGenerator {
  private pool = Buffer.alloc(2048);
  private off = this.pool.length;

  /** 16 hex digits, never all zeros. */
  spanId(): string {
    if (this.off + 8 > this.pool.length) { randomFillSync(this.pool); this.off = 0; }
    const id = this.pool.toString('hex', this.off, this.off + 8);
    this.off += 8;
    return id === ZERO16 ? this.spanId() : id;
  }

  traceId(bits128: boolean): string {
    return bits128 ? this.spanId() + this.spanId() : this.spanId();
  }
}

/** W3C form of a trace id: 32 hex digits. */
export function w3cTraceId(traceId: string): string {
  return traceId.length === 32 ? traceId : traceId.padStart(32, '0');
}

/** Sets the propagation headers for the next hop (mutates `h`): this span becomes the upstream's parent. */
export function inject(h: Record<string, string | string[]>, span: SpanContext): void {
  const sampled = span.sampled === true;
  h.traceparent = `00-${w3cTraceId(span.traceId)}-${span.spanId}-${sampled ? '01' : '00'}`;
  if (span.tracestate) h.tracestate = span.tracestate;
  h['x-b3-traceid'] = span.traceId;
  h['x-b3-spanid'] = span.spanId;
  if (span.parentId) h['x-b3-parentspanid'] = span.parentId;
  else delete h['x-b3-parentspanid'];
  if (span.debug) { h['x-b3-flags'] = '1'; delete h['x-b3-sampled']; }
  else { h['x-b3-sampled'] = sampled ? '1' : '0'; delete h['x-b3-flags']; }
  if (span.singleB3 || h.b3 !== undefined) {
    h.b3 = `${span.traceId}-${span.spanId}-${span.debug ? 'd' : sampled ? '1' : '0'}${span.parentId ? `-${span.parentId}` : ''}`;
  }
}
