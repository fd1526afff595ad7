/** Shapes shared by several Envoy resources: addresses, string matchers, TLS contexts, header options. */
import { EXT_TYPE_URL } from '../type-urls.js';
import { type Obj, arr, bool, fail, isObj, join, list, obj, port, regex, reqObj, reqStr, str, wrappedBool } from './read.js';

export interface SocketAddress {
  readonly address: string;
  readonly port: number;
}

/** `envoy.config.core.v3.Address` with a socket_address (pipe addresses are rejected: the proxy has no use for them). */
export function decodeAddress(o: Obj, path: string): SocketAddress {
  const sa = obj(o, 'socket_address', path);
  if (!sa) return fail(join(path, 'socket_address'), 'required (only socket addresses are supported)');
  const p = join(path, 'socket_address');
  return { address: reqStr(sa, 'address', p), port: port(sa, 'port_value', p) ?? 0 };
}

/** `envoy.type.matcher.v3.StringMatcher`, normalized. */
export interface StringMatch {
  readonly kind: 'exact' | 'prefix' | 'suffix' | 'contains' | 'regex';
  readonly value: string;
  readonly ignoreCase: boolean;
  /** Compiled for kind 'regex'. */
  readonly regex?: RegExp;
}

export function decodeStringMatcher(o: Obj, path: string): StringMatch {
  const ignoreCase = bool(o, 'ignore_case');
  for (const kind of ['exact', 'prefix', 'suffix', 'contains'] as const) {
    const v = o[kind];
    if (typeof v === 'string') return { kind, value: v, ignoreCase };
  }
  const sr = obj(o, 'safe_regex', path);
  if (sr) {
    const pattern = reqStr(sr, 'regex', join(path, 'safe_regex'));
    return { kind: 'regex', value: pattern, ignoreCase, regex: regex(pattern, join(join(path, 'safe_regex'), 'regex'), ignoreCase ? 'i' : '') };
  }
  return fail(path, 'one of exact, prefix, suffix, contains, safe_regex is required');
}

/** Evaluates a StringMatch against a value. */
export function matchString(m: StringMatch, value: string): boolean {
  if (m.kind === 'regex') return m.regex!.test(value);
  const v = m.ignoreCase ? value.toLowerCase() : value;
  const want = m.ignoreCase ? m.value.toLowerCase() : m.value;
  switch (m.kind) {
    case 'exact': return v === want;
    case 'prefix': return v.startsWith(want);
    case 'suffix': return v.endsWith(want);
    case 'contains': return v.includes(want);
  }
}

/** The SDS-delivered parts of a `CommonTlsContext`: which secrets to fetch, what to verify, which ALPN to offer. */
export interface TlsContext {
  /** Names of the `tls_certificate_sds_secret_configs` (Istio: `default`). */
  readonly certificateSds: readonly string[];
  /** Name of the validation context secret (Istio: `ROOTCA`), or null when peers are not verified. */
  readonly validationSds: string | null;
  /** SANs the peer must present (`match_typed_subject_alt_names` / `match_subject_alt_names`), any of them. */
  readonly matchSubjectAltNames: readonly { readonly type: 'URI' | 'DNS' | 'EMAIL' | 'IP_ADDRESS'; readonly match: StringMatch }[];
  readonly alpn: readonly string[];
  /** `tls_params`: protocol versions (node:tls names) and OpenSSL cipher names; absent = the proxy's defaults. */
  readonly tlsParams?: TlsParams;
}

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
export interface TlsParams {
  readonly minVersion: TlsVersion | null;
  readonly maxVersion: TlsVersion | null;
  readonly cipherSuites: readonly string[];
}

const TLS_VERSIONS: Readonly<Record<string, TlsVersion | null>> = { TLS_AUTO: null, TLSv1_0: 'TLSv1', TLSv1_1: 'TLSv1.1', TLSv1_2: 'TLSv1.2', TLSv1_3: 'TLSv1.3' };

function decodeTlsParams(o: Obj | undefined, path: string): TlsParams | undefined {
  if (o === undefined) return undefined;
  const version = (key: string): TlsVersion | null => {
    const v = o[key];
    if (v === undefined || v === null) return null;
    if (typeof v === 'string' && Object.hasOwn(TLS_VERSIONS, v)) return TLS_VERSIONS[v]!;
    return fail(join(path, key), `must be one of ${Object.keys(TLS_VERSIONS).join(', ')}`);
  };
  return { minVersion: version('tls_minimum_protocol_version'), maxVersion: version('tls_maximum_protocol_version'), cipherSuites: arr(o, 'cipher_suites', path).map((s, i) => (typeof s === 'string' ? s : fail(join(join(path, 'cipher_suites'), i), 'must be a string'))) };
}

export interface DownstreamTls extends TlsContext {
  readonly requireClientCertificate: boolean;
}

export interface UpstreamTls extends TlsContext {
  readonly sni: string | null;
}

function decodeCommonTls(o: Obj, path: string): TlsContext {
  const c = obj(o, 'common_tls_context', path) ?? {};
  const cp = join(path, 'common_tls_context');
  if (arr(c, 'tls_certificates', cp).length) fail(join(cp, 'tls_certificates'), 'inline certificates are not supported; use tls_certificate_sds_secret_configs');
  const certificateSds = list(c, 'tls_certificate_sds_secret_configs', cp, (s, p) => reqStr(s, 'name', p));
  let validationSds: string | null = null;
  let validation: Obj | undefined;
  const combined = obj(c, 'combined_validation_context', cp);
  if (combined) {
    const p = join(cp, 'combined_validation_context');
    validation = obj(combined, 'default_validation_context', p);
    const sds = obj(combined, 'validation_context_sds_secret_config', p);
    if (sds) validationSds = reqStr(sds, 'name', join(p, 'validation_context_sds_secret_config'));
  } else {
    const sds = obj(c, 'validation_context_sds_secret_config', cp);
    if (sds) validationSds = reqStr(sds, 'name', join(cp, 'validation_context_sds_secret_config'));
    validation = obj(c, 'validation_context', cp);
  }
  const sans: { type: 'URI' | 'DNS' | 'EMAIL' | 'IP_ADDRESS'; match: StringMatch }[] = [];
  if (validation) {
    const vp = join(cp, combined ? 'combined_validation_context.default_validation_context' : 'validation_context');
    for (const m of list(validation, 'match_typed_subject_alt_names', vp, (s, p) => ({
      type: ((): 'URI' | 'DNS' | 'EMAIL' | 'IP_ADDRESS' => {
        const t = s.san_type;
        if (t === 'URI' || t === 'DNS' || t === 'EMAIL' || t === 'IP_ADDRESS') return t;
        return fail(join(p, 'san_type'), 'must be one of URI, DNS, EMAIL, IP_ADDRESS');
      })(),
      match: decodeStringMatcher(reqObj(s, 'matcher', p), join(p, 'matcher')),
    }))) sans.push(m);
    for (const m of list(validation, 'match_subject_alt_names', vp, (s, p) => decodeStringMatcher(s, p))) sans.push({ type: 'URI', match: m });
  }
  const tlsParams = decodeTlsParams(obj(c, 'tls_params', cp), join(cp, 'tls_params'));
  return { certificateSds, validationSds, matchSubjectAltNames: sans, alpn: [...new Set([...(c.alpn_protocols as string[] | undefined ?? [])])], ...(tlsParams ? { tlsParams } : {}) };
}

export function decodeDownstreamTls(o: Obj, path: string): DownstreamTls {
  return { ...decodeCommonTls(o, path), requireClientCertificate: wrappedBool(o, 'require_client_certificate', path) ?? false };
}

export function decodeUpstreamTls(o: Obj, path: string): UpstreamTls {
  return { ...decodeCommonTls(o, path), sni: str(o, 'sni', path) ?? null };
}

/**
 * `envoy.config.core.v3.TransportSocket`: `raw_buffer` → null; `tls` → the typed context.
 * `expect` says which TLS context type is valid in this position.
 */
export function decodeTransportSocket<T>(o: Obj | undefined, path: string, expect: 'upstream' | 'downstream'): T | null {
  if (!o) return null;
  const tc = obj(o, 'typed_config', path);
  const name = str(o, 'name', path) ?? '';
  if (!tc) {
    if (name === 'envoy.transport_sockets.raw_buffer' || name === 'raw_buffer' || name === '') return null;
    return fail(join(path, 'typed_config'), 'required');
  }
  const tp = join(path, 'typed_config');
  const type = tc['@type'];
  if (typeof type === 'string' && type.endsWith('.RawBuffer')) return null;
  if (expect === 'upstream') {
    if (type !== EXT_TYPE_URL.upstreamTlsContext) fail(join(tp, '@type'), `must be ${EXT_TYPE_URL.upstreamTlsContext}`);
    return decodeUpstreamTls(tc, tp) as T;
  }
  if (type !== EXT_TYPE_URL.downstreamTlsContext) fail(join(tp, '@type'), `must be ${EXT_TYPE_URL.downstreamTlsContext}`);
  return decodeDownstreamTls(tc, tp) as T;
}

/** `envoy.config.core.v3.HeaderValueOption`. */
export interface HeaderToAdd {
  readonly key: string;
  readonly value: string;
  readonly action: 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';
}

export function decodeHeadersToAdd(o: Obj, key: string, path: string): readonly HeaderToAdd[] {
  return list(o, key, path, (h, p) => {
    const header = reqObj(h, 'header', p);
    const hk = reqStr(header, 'key', join(p, 'header')).toLowerCase();
    const value = typeof header.value === 'string' ? header.value : '';
    const append = wrappedBool(h, 'append', p);
    const explicit = h.append_action;
    let action: HeaderToAdd['action'] = append === false ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD';
    if (typeof explicit === 'string' && explicit !== 'APPEND_IF_EXISTS_OR_ADD') {
      if (explicit !== 'ADD_IF_ABSENT' && explicit !== 'OVERWRITE_IF_EXISTS_OR_ADD' && explicit !== 'OVERWRITE_IF_EXISTS') fail(join(p, 'append_action'), 'unsupported');
      action = explicit;
    }
    return { key: hk, value, action };
  });
}

export function lowerStrs(o: Obj, key: string, path: string): readonly string[] {
  return arr(o, key, path).map((v, i) => (typeof v === 'string' ? v.toLowerCase() : fail(join(join(path, key), i), 'must be a string')));
}

export { isObj };
