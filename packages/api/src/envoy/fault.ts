/**
 * `envoy.extensions.filters.http.fault.v3.HTTPFault` (filter config and per-route override) and the
 * `envoy.type.v3.FractionalPercent` it and other configs (mirror policies, CORS `filter_enabled`) use.
 *
 * Istio writes the fault per route (`typed_per_filter_config['envoy.filters.http.fault']`) with the request match on
 * the route itself; the HCM's filter entry is empty (no delay, no abort: the filter does nothing unless a route
 * says so). Header-controlled faults (`header_delay`, `header_abort`) read Envoy's `x-envoy-fault-*` request headers.
 */
import { decodeStringMatcher } from './common.js';
import { type Obj, bool, deepFreeze, durationMs, fail, join, list, num, obj, regex, reqStr, str, wrapped } from './read.js';
import type { HeaderMatch } from './route.js';

/** `numerator / denominator`; Envoy's check is `random % denominator < numerator`. */
export interface FractionalPercent {
  readonly numerator: number;
  readonly denominator: 100 | 10_000 | 1_000_000;
}

const DENOMINATORS = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 } as const;

/** Decodes a FractionalPercent; an unset message is `dflt` (Envoy: numerator 0, i.e. never, for faults). */
export function decodeFractionalPercent(o: Obj | undefined, path: string, dflt: FractionalPercent = { numerator: 0, denominator: 100 }): FractionalPercent {
  if (!o) return dflt;
  const numerator = num(o, 'numerator', path) ?? 0;
  if (!Number.isInteger(numerator) || numerator < 0) fail(join(path, 'numerator'), 'must be a non-negative integer');
  const d = o.denominator ?? 'HUNDRED';
  const denominator = typeof d === 'string' ? DENOMINATORS[d as keyof typeof DENOMINATORS] : undefined;
  if (denominator === undefined) fail(join(path, 'denominator'), 'must be one of HUNDRED, TEN_THOUSAND, MILLION');
  return { numerator, denominator };
}

/** Whether a draw from `random` ([0, 1)) falls inside the percentage. */
export function fractionHit(p: FractionalPercent, random: () => number): boolean {
  if (p.numerator >= p.denominator) return true;
  if (p.numerator === 0) return false;
  return Math.floor(random() * p.denominator) < p.numerator;
}

export interface FaultDelay {
  /** The fixed delay; null when the delay comes from the `x-envoy-fault-delay-request` header (`header_delay`). */
  readonly fixedDelayMs: number | null;
  readonly percentage: FractionalPercent;
}

export interface FaultAbort {
  /** Exactly one of httpStatus / grpcStatus, unless `headerAbort` (status from `x-envoy-fault-abort-*` headers). */
  readonly httpStatus: number | null;
  readonly grpcStatus: number | null;
  readonly headerAbort: boolean;
  readonly percentage: FractionalPercent;
}

export interface HttpFault {
  readonly kind: 'http_fault';
  readonly delay: FaultDelay | null;
  readonly abort: FaultAbort | null;
  /** All must match for the fault to apply (Istio puts its matches on the route instead and leaves this empty). */
  readonly headers: readonly HeaderMatch[];
  /** Applies only to requests routed to this cluster, when set. */
  readonly upstreamCluster: string | null;
  /** At most this many requests held or aborted by the filter at once (null = no limit). */
  readonly maxActiveFaults: number | null;
}

function decodeHeaderMatcher(h: Obj, p: string): HeaderMatch {
  const name = reqStr(h, 'name', p).toLowerCase();
  const invert = bool(h, 'invert_match');
  if (typeof h.present_match === 'boolean') return { name, match: null, present: h.present_match, invert };
  const sm = obj(h, 'string_match', p);
  if (sm) return { name, match: decodeStringMatcher(sm, join(p, 'string_match')), present: true, invert };
  for (const [key, kind] of [['exact_match', 'exact'], ['prefix_match', 'prefix'], ['suffix_match', 'suffix'], ['contains_match', 'contains']] as const) {
    if (typeof h[key] === 'string') return { name, match: { kind, value: h[key] as string, ignoreCase: false }, present: true, invert };
  }
  const sr = obj(h, 'safe_regex_match', p);
  if (sr) {
    const pattern = reqStr(sr, 'regex', join(p, 'safe_regex_match'));
    return { name, match: { kind: 'regex', value: pattern, ignoreCase: false, regex: regex(pattern, join(p, 'safe_regex_match.regex')) }, present: true, invert };
  }
  if (obj(h, 'range_match', p)) fail(join(p, 'range_match'), 'not supported');
  return { name, match: null, present: true, invert };
}

function decodeDelay(d: Obj, p: string): FaultDelay {
  const fixed = durationMs(d, 'fixed_delay', p);
  const header = obj(d, 'header_delay', p);
  if (fixed === undefined && !header) fail(p, 'one of fixed_delay, header_delay is required');
  return { fixedDelayMs: header ? null : fixed!, percentage: decodeFractionalPercent(obj(d, 'percentage', p), join(p, 'percentage')) };
}

function decodeAbort(a: Obj, p: string): FaultAbort {
  const percentage = decodeFractionalPercent(obj(a, 'percentage', p), join(p, 'percentage'));
  if (obj(a, 'header_abort', p)) return { httpStatus: null, grpcStatus: null, headerAbort: true, percentage };
  const http = num(a, 'http_status', p);
  if (http !== undefined) {
    if (!Number.isInteger(http) || http < 200 || http >= 600) fail(join(p, 'http_status'), 'must be 200-599');
    return { httpStatus: http, grpcStatus: null, headerAbort: false, percentage };
  }
  const grpc = num(a, 'grpc_status', p);
  if (grpc !== undefined) {
    if (!Number.isInteger(grpc) || grpc < 0) fail(join(p, 'grpc_status'), 'must be a gRPC status code');
    return { httpStatus: null, grpcStatus: grpc, headerAbort: false, percentage };
  }
  return fail(p, 'one of http_status, grpc_status, header_abort is required');
}

/** Decodes an HTTPFault (`typed_config` of the filter or a per-route override). */
export function decodeHttpFault(o: Obj, path: string): HttpFault {
  const delay = obj(o, 'delay', path);
  const abort = obj(o, 'abort', path);
  const max = wrapped(o, 'max_active_faults', path);
  return deepFreeze({
    kind: 'http_fault' as const,
    delay: delay ? decodeDelay(delay, join(path, 'delay')) : null,
    abort: abort ? decodeAbort(abort, join(path, 'abort')) : null,
    headers: list(o, 'headers', path, decodeHeaderMatcher),
    upstreamCluster: str(o, 'upstream_cluster', path) ?? null,
    maxActiveFaults: max === undefined ? null : max,
  });
}
