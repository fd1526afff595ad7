/**
 * Where tokens are read (Envoy's extractor): headers (with an optional value prefix such as `Bearer `, found without
 * regard to case; the token is the run of JWT characters after the prefix), query parameters and cookies. A provider with no locations uses
 * Envoy's defaults: `Authorization: Bearer <token>` and `?access_token=<token>`.
 */
import type { JwtProvider } from '@trellis/api';

export type TokenLocation =
  | { readonly kind: 'header'; readonly name: string; readonly prefix: string; readonly key: string }
  | { readonly kind: 'param'; readonly name: string; readonly key: string }
  | { readonly kind: 'cookie'; readonly name: string; readonly key: string };

export interface FoundToken {
  readonly token: string;
  readonly location: TokenLocation;
}

const DEFAULT_LOCATIONS: readonly TokenLocation[] = Object.freeze([
  Object.freeze({ kind: 'header', name: 'authorization', prefix: 'Bearer ', key: 'header:authorization:Bearer ' } as const),
  Object.freeze({ kind: 'param', name: 'access_token', key: 'param:access_token' } as const),
]);

export function locationsOf(p: JwtProvider): readonly TokenLocation[] {
  if (p.fromHeaders.length === 0 && p.fromParams.length === 0 && p.fromCookies.length === 0) return DEFAULT_LOCATIONS;
  return Object.freeze([
    ...p.fromHeaders.map((h): TokenLocation => ({ kind: 'header', name: h.name, prefix: h.valuePrefix, key: `header:${h.name}:${h.valuePrefix}` })),
    ...p.fromParams.map((n): TokenLocation => ({ kind: 'param', name: n, key: `param:${n}` })),
    ...p.fromCookies.map((n): TokenLocation => ({ kind: 'cookie', name: n, key: `cookie:${n}` })),
  ]);
}

/** Characters a token can contain (base64url, the dots, and padding / base64 characters some issuers use). */
function isJwtChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f || c === 0x2d || c === 0x3d || c === 0x2b || c === 0x2f;
}

/** The token characters from `start` on (Envoy stops at the first character a JWT cannot contain). */
function jwtRun(v: string, start: number): string {
  let end = start;
  while (end < v.length && isJwtChar(v.charCodeAt(end))) end++;
  return v.slice(start, end);
}

function headerValues(h: Record<string, string | string[]>, name: string): readonly string[] {
  const v = h[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Tokens found at `locations` (each location once), in location order. */
export function extractTokens(locations: readonly TokenLocation[], headers: Record<string, string | string[]>, path: string): FoundToken[] {
  const out: FoundToken[] = [];
  let query: URLSearchParams | null | undefined;
  let cookies: Map<string, string> | undefined;
  for (const loc of locations) {
    if (loc.kind === 'header') {
      for (const v of headerValues(headers, loc.name)) {
        if (loc.prefix === '') { if (v !== '') out.push({ token: v.trim(), location: loc }); continue; }
        // Case-insensitive (an auth scheme is: `bearer x` is the same as `Bearer x`, RFC 7235).
        let i = v.indexOf(loc.prefix);
        if (i < 0) i = v.toLowerCase().indexOf(loc.prefix.toLowerCase());
        if (i < 0) continue;
        const t = jwtRun(v, i + loc.prefix.length);
        if (t !== '') out.push({ token: t, location: loc });
      }
    } else if (loc.kind === 'param') {
      if (query === undefined) { const q = path.indexOf('?'); query = q < 0 ? null : new URLSearchParams(path.slice(q + 1)); }
      const t = query?.get(loc.name);
      if (t) out.push({ token: t, location: loc });
    } else {
      if (cookies === undefined) cookies = parseCookies(headerValues(headers, 'cookie'));
      const t = cookies.get(loc.name);
      if (t) out.push({ token: t, location: loc });
    }
  }
  return out;
}

function parseCookies(values: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const v of values) {
    for (const part of v.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      const k = part.slice(0, eq).trim();
      let val = part.slice(eq + 1).trim();
      if (val.startsWith('"') && val.endsWith('"') && val.length >= 2) val = val.slice(1, -1);
      if (!m.has(k)) m.set(k, val);
    }
  }
  return m;
}
