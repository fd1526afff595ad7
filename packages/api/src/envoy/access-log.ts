/**
 * Access log and tracing settings of an HCM / tcp_proxy:
 * `access_log` (`envoy.config.accesslog.v3.AccessLog` with a FileAccessLog or StdoutAccessLog) → AccessLogConfig,
 * `tracing` (HCM `Tracing` with a Zipkin provider) → TracingConfig.
 *
 * Format strings are parsed here, once per config, into segments (literal text and Envoy command operators such as
 * `%REQ(:METHOD)%`, `%RESPONSE_FLAGS%`, `%DOWNSTREAM_PEER_URI_SAN%`), so a malformed format is NACKed with its
 * field path, as Envoy does, and the proxy only evaluates segments per request.
 */
import { fromStruct } from '../any.js';
import { EXT_TYPE_URL } from '../type-urls.js';
import { type Obj, deepFreeze, fail, join, list, obj, reqStr, str } from './read.js';

/** One piece of a format string: literal text, or a command operator with its optional argument. */
export type FormatSegment =
  | { readonly kind: 'text'; readonly text: string }
  | {
    readonly kind: 'op';
    /** Operator name as written, e.g. `REQ`, `START_TIME`, `RESPONSE_CODE`. */
    readonly op: string;
    /** `REQ(X?Y)`: header X, else Y (both lowercase). START_TIME(fmt): the strftime format. */
    readonly arg: string | null;
    readonly alt: string | null;
    /** `%REQ(X):N%`: truncate to N characters. */
    readonly maxLength: number | null;
  };

export type AccessLogFormat =
  | { readonly kind: 'text'; readonly segments: readonly FormatSegment[] }
  /** JSON object: each value is parsed format segments (strings), a nested object, or a literal. */
  | { readonly kind: 'json'; readonly fields: JsonFormatFields }
  /** No format given: Envoy's default text format. */
  | { readonly kind: 'default' };

export interface JsonFormatFields {
  readonly [key: string]: readonly FormatSegment[] | JsonFormatFields | number | boolean | null;
}

export interface AccessLogConfig {
  readonly name: string;
  /** File path; `/dev/stdout` for StdoutAccessLog. */
  readonly path: string;
  readonly format: AccessLogFormat;
}

export interface ZipkinProvider {
  readonly kind: 'zipkin';
  readonly collectorCluster: string;
  /** Path of the collector API, e.g. `/api/v2/spans`. */
  readonly collectorEndpoint: string;
  /** `Host` of collector requests; Trellis also uses it as the collector's `host:port` (see docs/proxy.md). */
  readonly collectorHostname: string | null;
  readonly traceId128bit: boolean;
  readonly sharedSpanContext: boolean;
}

export interface TracingConfig {
  /** Percentage of requests without a sampling decision that start a sampled trace (`random_sampling`), 0-100. */
  readonly randomSampling: number;
  /** Percentage of requests with a trace the client forced (`x-client-trace-id`), 0-100. */
  readonly clientSampling: number;
  readonly provider: ZipkinProvider | null;
}

/** Envoy's command operators Trellis evaluates (others render `-`, as Envoy does for a value it lacks). */
export const KNOWN_OPERATORS: ReadonlySet<string> = new Set([
  'START_TIME', 'REQ', 'RESP', 'TRAILER', 'PROTOCOL', 'RESPONSE_CODE', 'RESPONSE_CODE_DETAILS', 'RESPONSE_FLAGS', 'RESPONSE_FLAGS_LONG',
  'CONNECTION_TERMINATION_DETAILS', 'BYTES_RECEIVED', 'BYTES_SENT', 'DURATION', 'REQUEST_DURATION', 'RESPONSE_DURATION',
  'UPSTREAM_HOST', 'UPSTREAM_CLUSTER', 'UPSTREAM_CLUSTER_RAW', 'UPSTREAM_LOCAL_ADDRESS', 'UPSTREAM_TRANSPORT_FAILURE_REASON',
  'DOWNSTREAM_LOCAL_ADDRESS', 'DOWNSTREAM_REMOTE_ADDRESS', 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT', 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS',
  'DOWNSTREAM_PEER_URI_SAN', 'DOWNSTREAM_LOCAL_URI_SAN', 'UPSTREAM_PEER_URI_SAN', 'REQUESTED_SERVER_NAME', 'ROUTE_NAME',
  'DYNAMIC_METADATA', 'FILTER_STATE', 'CONNECTION_ID', 'HOSTNAME', 'UPSTREAM_REQUEST_ATTEMPT_COUNT', 'TRACE_ID',
]);

const OPERATOR = /^([A-Z][A-Z0-9_]*)(?:\(([^)]*)\))?(?::(\d+))?$/;

/** Parses an Envoy format string (`[%START_TIME%] "%REQ(:METHOD)%"`); `%%` is a literal `%`. */
export function parseFormatString(s: string, path: string): readonly FormatSegment[] {
  const out: FormatSegment[] = [];
  let text = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c !== '%') { text += c; i += 1; continue; }
    if (s[i + 1] === '%') { text += '%'; i += 2; continue; }
    const end = s.indexOf('%', i + 1);
    if (end < 0) fail(path, `unterminated command operator at position ${i}`);
    const m = OPERATOR.exec(s.slice(i + 1, end));
    if (!m) fail(path, `invalid command operator %${s.slice(i + 1, end)}% at position ${i}`);
    if (text) { out.push({ kind: 'text', text }); text = ''; }
    const [, op, rawArg, len] = m;
    let arg: string | null = rawArg ?? null;
    let alt: string | null = null;
    if ((op === 'REQ' || op === 'RESP' || op === 'TRAILER')) {
      if (!arg) fail(path, `%${op}(…)% needs a header name`);
      const q = arg.indexOf('?');
      if (q >= 0) { alt = arg.slice(q + 1).toLowerCase(); arg = arg.slice(0, q); }
      arg = arg.toLowerCase();
    }
    out.push({ kind: 'op', op, arg, alt, maxLength: len === undefined ? null : Number(len) });
    i = end + 1;
  }
  if (text) out.push({ kind: 'text', text });
  return out;
}

function decodeJsonFields(json: Record<string, unknown>, path: string): JsonFormatFields {
  const out: Record<string, JsonFormatFields[string]> = {};
  for (const [k, v] of Object.entries(json)) {
    if (typeof v === 'string') out[k] = parseFormatString(v, join(path, k));
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) out[k] = decodeJsonFields(v as Record<string, unknown>, join(path, k));
    else if (typeof v === 'number' || typeof v === 'boolean' || v === null) out[k] = v;
    else fail(join(path, k), 'must be a format string, a number, a boolean or an object');
  }
  return out;
}

/** `SubstitutionFormatString` (`log_format`), or the legacy `format` / `json_format` fields of FileAccessLog. */
function decodeLogFormat(tc: Obj, p: string): AccessLogFormat {
  const lf = obj(tc, 'log_format', p);
  if (lf) {
    const lp = join(p, 'log_format');
    const text = str(lf, 'text_format', lp);
    if (text !== undefined) return { kind: 'text', segments: parseFormatString(text, join(lp, 'text_format')) };
    const src = obj(lf, 'text_format_source', lp);
    if (src) return { kind: 'text', segments: parseFormatString(reqStr(src, 'inline_string', join(lp, 'text_format_source')), join(join(lp, 'text_format_source'), 'inline_string')) };
    const json = obj(lf, 'json_format', lp);
    if (json) return { kind: 'json', fields: decodeJsonFields(fromStruct(json as { fields?: Record<string, unknown> }), join(lp, 'json_format')) };
    return fail(lp, 'needs text_format_source or json_format');
  }
  const legacy = str(tc, 'format', p);
  if (legacy !== undefined) return { kind: 'text', segments: parseFormatString(legacy, join(p, 'format')) };
  const json = obj(tc, 'json_format', p) ?? obj(tc, 'typed_json_format', p);
  if (json) return { kind: 'json', fields: decodeJsonFields(fromStruct(json as { fields?: Record<string, unknown> }), join(p, 'json_format')) };
  return { kind: 'default' };
}

/**
 * `access_log` entries. File and stdout loggers are kept; other logger types (gRPC ALS, OpenTelemetry) are
 * skipped (null), as Trellis has no sink for them, rather than NACKing a whole listener.
 */
export function decodeAccessLogs(o: Obj, p: string): readonly AccessLogConfig[] {
  return Object.freeze(list(o, 'access_log', p, (a, ap): AccessLogConfig | null => {
    const name = str(a, 'name', ap) ?? '';
    const tc = obj(a, 'typed_config', ap);
    const type = tc?.['@type'];
    if (!tc) return fail(join(ap, 'typed_config'), 'required');
    const tp = join(ap, 'typed_config');
    if (type === EXT_TYPE_URL.fileAccessLog) return { name, path: reqStr(tc, 'path', tp), format: decodeLogFormat(tc, tp) };
    if (type === EXT_TYPE_URL.stdoutAccessLog) return { name, path: '/dev/stdout', format: decodeLogFormat(tc, tp) };
    return null;
  }).filter((x): x is AccessLogConfig => x !== null));
}

function percent(o: Obj, key: string, path: string, dflt: number): number {
  const v = obj(o, key, path);
  if (!v) return dflt;
  const n = v.value === undefined ? 0 : Number(v.value);
  if (!Number.isFinite(n) || n < 0 || n > 100) fail(join(join(path, key), 'value'), 'must be a percentage 0-100');
  return n;
}

/** HCM `tracing`, or null when absent. Providers other than Zipkin are ignored (provider null). */
export function decodeTracing(o: Obj, p: string): TracingConfig | null {
  const t = obj(o, 'tracing', p);
  if (!t) return null;
  const tp = join(p, 'tracing');
  let provider: ZipkinProvider | null = null;
  const prov = obj(t, 'provider', tp);
  const tc = prov ? obj(prov, 'typed_config', join(tp, 'provider')) : undefined;
  if (tc && tc['@type'] === EXT_TYPE_URL.zipkinConfig) {
    const zp = join(join(tp, 'provider'), 'typed_config');
    const version = tc.collector_endpoint_version ?? 'HTTP_JSON';
    if (version !== 'HTTP_JSON') fail(join(zp, 'collector_endpoint_version'), `unsupported value ${JSON.stringify(version)} (supported: HTTP_JSON)`);
    const shared = obj(tc, 'shared_span_context', zp);
    provider = {
      kind: 'zipkin',
      collectorCluster: reqStr(tc, 'collector_cluster', zp),
      collectorEndpoint: reqStr(tc, 'collector_endpoint', zp),
      collectorHostname: str(tc, 'collector_hostname', zp) ?? null,
      traceId128bit: tc.trace_id_128bit === true,
      sharedSpanContext: shared ? shared.value === true : true,
    };
  }
  // Envoy's defaults: random 100 %, client 100 %.
  return { randomSampling: percent(t, 'random_sampling', tp, 100), clientSampling: percent(t, 'client_sampling', tp, 100), provider };
}

/** Envoy's default format (a file access log configured without one). */
export const ENVOY_DEFAULT_FORMAT = '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% '
  + '%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
  + '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n';

/** Istio's default TEXT access log format (MeshConfig `accessLogEncoding: TEXT` with no `accessLogFormat`). */
export const ISTIO_TEXT_FORMAT = '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% '
  + '%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
  + '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" '
  + '%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

/**
 * Istio's default JSON access log fields (`accessLogEncoding: JSON`), plus the downstream peer's identity
 * (`downstream_peer_principal`, Trellis's addition: the SPIFFE id of the mTLS client).
 */
export const ISTIO_JSON_FORMAT: Readonly<Record<string, string>> = Object.freeze({
  start_time: '%START_TIME%',
  route_name: '%ROUTE_NAME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  authority: '%REQ(:AUTHORITY)%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER_RAW%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
  downstream_peer_principal: '%DOWNSTREAM_PEER_URI_SAN%',
  upstream_peer_principal: '%UPSTREAM_PEER_URI_SAN%',
});

/** The parsed form of one of Istio's default formats, for a proxy that logs without control-plane config. */
export function istioAccessLogFormat(encoding: 'TEXT' | 'JSON'): AccessLogFormat {
  if (encoding === 'TEXT') return deepFreeze({ kind: 'text', segments: parseFormatString(ISTIO_TEXT_FORMAT, 'format') });
  return deepFreeze({ kind: 'json', fields: decodeJsonFields({ ...ISTIO_JSON_FORMAT }, 'format') });
}
