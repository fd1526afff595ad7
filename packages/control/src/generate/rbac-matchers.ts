/**
 * Envoy matchers (`type.matcher.v3.StringMatcher`, `config.route.v3.HeaderMatcher`, `MetadataMatcher`,
 * `ValueMatcher`, `CidrRange`) built from Istio's AuthorizationPolicy value syntax, as istio/istio
 * pilot/pkg/security/authz/matcher does: a value is exact, `prefix*`, `*suffix`, or `*` (present / `.+`).
 */

type Obj = Record<string, unknown>;

/** The metadata namespace jwt_authn writes verified payloads under, and the key Istio asks it to use. */
export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
export const JWT_PAYLOAD_KEY = 'payload';

export function regexMatcher(regex: string): Obj {
  return { safe_regex: { regex } };
}

/** RE2 escape of a literal (what Go's regexp.QuoteMeta does). */
export function quoteMeta(s: string): string {
  return s.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

/**
 * Istio's StringMatcherWithPrefix: `*` → regex `.+` (any non-empty value, the prefix is ignored); `*x` → suffix
 * (or, with a prefix, regex `<prefix>.*x`); `x*` → prefix `<prefix>x`; else exact `<prefix>x`.
 */
export function stringMatcher(v: string, prefix = ''): Obj {
  if (v === '*') return regexMatcher('.+');
  if (v.startsWith('*')) {
    if (prefix === '') return { suffix: v.slice(1) };
    return regexMatcher(`${quoteMeta(prefix)}.*${quoteMeta(v.slice(1))}`);
  }
  if (v.endsWith('*')) return { prefix: prefix + v.slice(0, -1) };
  return { exact: prefix + v };
}

/** Header matcher for methods and `request.headers[...]`: `*` → present, else a case-sensitive string match. */
export function headerMatcher(name: string, v: string): Obj {
  if (v === '*') return { name, present_match: true };
  if (v.startsWith('*')) return { name, string_match: { suffix: v.slice(1) } };
  if (v.endsWith('*')) return { name, string_match: { prefix: v.slice(0, -1) } };
  return { name, string_match: { exact: v } };
}

/** `:authority` matcher for `hosts`: like headerMatcher but case-insensitive (host names are). */
export function hostMatcher(name: string, v: string): Obj {
  if (v === '*') return { name, present_match: true };
  if (v.startsWith('*')) return { name, string_match: { suffix: v.slice(1), ignore_case: true } };
  if (v.endsWith('*')) return { name, string_match: { prefix: v.slice(0, -1), ignore_case: true } };
  return { name, string_match: { exact: v, ignore_case: true } };
}

/**
 * Path matcher for `paths`. Istio's path templates (`/a/{*}/b`, `/{**}/x`: `{*}` one segment, `{**}` any number of
 * segments) become an RE2 regex over the path here (Istio uses Envoy's uri_template extension; same decisions).
 */
export function pathMatcher(v: string): Obj {
  if (v.includes('{')) {
    const re = v
      .split('/')
      .map((seg) => (seg === '{*}' ? '[^/]+' : seg === '{**}' ? '.*' : quoteMeta(seg)))
      .join('/');
    return { path: regexMatcher(re) };
  }
  return { path: stringMatcher(v) };
}

/** `CidrRange` from an IP or CIDR (`1.2.3.4` → /32, `::1` → /128). */
export function cidrRange(s: string): Obj {
  const [addr = s, len] = s.split('/');
  const prefixLen = len !== undefined ? Number(len) : addr.includes(':') ? 128 : 32;
  return { address_prefix: addr, prefix_len: { value: prefixLen } };
}

/** A MetadataMatcher on jwt_authn's verified payload: `path` below the payload key. */
export function jwtPayloadMatcher(claimPath: readonly string[], value: Obj): Obj {
  return {
    filter: JWT_AUTHN_FILTER,
    path: [JWT_PAYLOAD_KEY, ...claimPath].map((key) => ({ key })),
    value,
  };
}

/**
 * Istio's matcher for claims, audiences and presenter: the claim may be a string or a list of strings
 * (`aud`, `groups`), so the value matches when the string, or any element of the list, matches any value.
 */
export function claimValueMatcher(values: readonly string[]): Obj {
  const any = { or_match: { value_matchers: values.map((v) => ({ string_match: stringMatcher(v) })) } };
  return { or_match: { value_matchers: [{ list_match: { one_of: any } }, any] } };
}
