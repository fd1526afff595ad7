/**
 * A route's RetryPolicy compiled once (cached per frozen policy) into what the upstream stage asks per attempt:
 * should this response / this failure be retried, and under which `retry_on` condition. Envoy's semantics
 * (router_filter "x-envoy-retry-on", "x-envoy-retry-grpc-on"):
 *
 * - `5xx`: a 5xx response, or no response at all (connect failure, reset, refused stream, per-try timeout);
 * - `gateway-error`: like 5xx but only 502, 503 and 504 responses (and the same no-response failures);
 * - `reset`: no response (disconnect, reset, per-try timeout), including connect failures;
 * - `connect-failure`: the connection to the upstream could not be made (refused, TLS failure, connect timeout);
 * - `refused-stream`: the upstream refused the HTTP/2 stream (REFUSED_STREAM, or not processed before GOAWAY);
 * - `retriable-4xx`: a 409 response;
 * - `retriable-status-codes`: a status listed in `retriable_status_codes`;
 * - `retriable-headers`: a response matching one of `retriable_headers`;
 * - `envoy-ratelimited`: a response carrying `x-envoy-ratelimited`;
 * - gRPC `cancelled` (1), `deadline-exceeded` (4), `resource-exhausted` (8), `unavailable` (14), `internal` (13):
 *   the `grpc-status` of the response head, i.e. a trailers-only response (a status in trailers comes after the
 *   response started and cannot be retried, in Envoy too).
 * Unknown conditions are ignored. Any method is retried when a condition matches (as Envoy does): a route that
 * must not repeat a non-idempotent request should not list response conditions in retry_on.
 */
import { type HeaderMatch, type RetryPolicy, matchString } from '@trellis/api';

const ON_5XX = 1;
const ON_GATEWAY = 2;
const ON_RESET = 4;
const ON_CONNECT = 8;
const ON_4XX = 16;
const ON_REFUSED = 32;
const ON_CODES = 64;
const ON_HEADERS = 128;
const ON_RATELIMITED = 256;
const ON_GRPC_CANCELLED = 512;
const ON_GRPC_DEADLINE = 1024;
const ON_GRPC_RESOURCE = 2048;
const ON_GRPC_UNAVAILABLE = 4096;
const ON_GRPC_INTERNAL = 8192;

const BITS: Readonly<Record<string, number>> = {
  '5xx': ON_5XX, 'gateway-error': ON_GATEWAY, reset: ON_RESET, 'connect-failure': ON_CONNECT, 'retriable-4xx': ON_4XX,
  'refused-stream': ON_REFUSED, 'retriable-status-codes': ON_CODES, 'retriable-headers': ON_HEADERS, 'envoy-ratelimited': ON_RATELIMITED,
  cancelled: ON_GRPC_CANCELLED, 'deadline-exceeded': ON_GRPC_DEADLINE, 'resource-exhausted': ON_GRPC_RESOURCE, unavailable: ON_GRPC_UNAVAILABLE, internal: ON_GRPC_INTERNAL,
};

const GRPC: readonly (readonly [number, number, string])[] = [
  [1, ON_GRPC_CANCELLED, 'cancelled'], [4, ON_GRPC_DEADLINE, 'deadline-exceeded'], [8, ON_GRPC_RESOURCE, 'resource-exhausted'],
  [14, ON_GRPC_UNAVAILABLE, 'unavailable'], [13, ON_GRPC_INTERNAL, 'internal'],
];

export const PREVIOUS_HOSTS = 'envoy.retry_host_predicates.previous_hosts';

export interface CompiledRetry {
  readonly policy: RetryPolicy;
  readonly on: number;
  readonly previousHosts: boolean;
}

/** How an attempt failed without a response head. */
export type FailureKind = 'connect_failure' | 'refused' | 'reset' | 'per_try_timeout';

const cache = new WeakMap<RetryPolicy, CompiledRetry | null>();

/** null when the policy can never retry (no policy, num_retries 0, no known condition). */
export function compileRetry(p: RetryPolicy | null): CompiledRetry | null {
  if (!p) return null;
  let c = cache.get(p);
  if (c !== undefined) return c;
  let on = 0;
  for (const t of p.retryOn) on |= BITS[t] ?? 0;
  c = p.numRetries > 0 && on !== 0 ? Object.freeze({ policy: p, on, previousHosts: p.retryHostPredicates.includes(PREVIOUS_HOSTS) }) : null;
  cache.set(p, c);
  return c;
}

/** The condition under which a failure without a response is retried, or null. */
export function retryReasonForFailure(c: CompiledRetry, kind: FailureKind): string | null {
  const on = c.on;
  if (kind === 'connect_failure' && on & ON_CONNECT) return 'connect-failure';
  if (kind === 'refused' && on & ON_REFUSED) return 'refused-stream';
  if (on & ON_RESET) return 'reset';
  if (on & ON_5XX) return '5xx';
  if (on & ON_GATEWAY) return 'gateway-error';
  return null;
}

export type HeaderLookup = (name: string) => string | undefined;
/** Response headers as the upstream clients give them: lowercase names. */
export type RawResponseHeaders = Readonly<Record<string, string | string[] | number | undefined>>;

/** The condition under which a response (its head) is retried, or null. */
export function retryReasonForResponse(c: CompiledRetry, status: number, headers: RawResponseHeaders): string | null {
  const on = c.on;
  if (on & ON_5XX && status >= 500) return '5xx';
  if (on & ON_GATEWAY && status >= 502 && status <= 504) return 'gateway-error';
  if (on & ON_4XX && status === 409) return 'retriable-4xx';
  if (on & ON_CODES && c.policy.retriableStatusCodes.includes(status)) return 'retriable-status-codes';
  if (on & ON_HEADERS && c.policy.retriableHeaders.some((h) => headerMatches(h, valueOf(headers[h.name]), status))) return 'retriable-headers';
  if (on & ON_RATELIMITED && headers['x-envoy-ratelimited'] !== undefined) return 'envoy-ratelimited';
  if (on >= ON_GRPC_CANCELLED) {
    const gs = headers['grpc-status'];
    if (gs !== undefined) {
      const code = Number(gs);
      for (const [n, bit, name] of GRPC) if (code === n && on & bit) return name;
    }
  }
  return null;
}

/** `retriable_request_headers`: when set, only a request matching one of them may be retried. */
export function requestMayRetry(c: CompiledRetry, header: HeaderLookup): boolean {
  const hs = c.policy.retriableRequestHeaders;
  return hs.length === 0 || hs.some((h) => headerMatches(h, header(h.name), 0));
}

function headerMatches(h: HeaderMatch, value: string | undefined, status: number): boolean {
  const v = h.name === ':status' ? String(status) : value;
  let ok: boolean;
  if (h.match === null) ok = h.present ? v !== undefined : v === undefined;
  else ok = v !== undefined && matchString(h.match, v);
  return h.invert ? !ok : ok;
}

function valueOf(v: string | string[] | number | undefined): string | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v.join(',') : String(v);
}
