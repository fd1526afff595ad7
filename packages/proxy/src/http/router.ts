/**
 * Route selection as Envoy does it: the virtual host by authority (exact, then longest `*.suffix`, then longest
 * `prefix.*`, then `*`; the authority is tried as sent and without its port), then the first route whose match holds.
 */
import { type HeaderMatch, type QueryMatch, type Route, type RouteConfig, type RouteMatch, type VirtualHost, matchString } from '@trellis/api';

/** Request facts the matcher reads; `headers` are lowercase names, `:method` included. */
export interface RouteInput {
  readonly authority: string;
  /** Path with query. */
  readonly path: string;
  readonly header: (name: string) => string | undefined;
}

export function selectVirtualHost(rc: RouteConfig, authority: string): VirtualHost | null {
  const host = authority.toLowerCase();
  const noPort = stripPort(host);
  for (const candidate of noPort === host ? [host] : [host, noPort]) {
    const vh = bestDomainMatch(rc.virtualHosts, candidate);
    if (vh) return vh;
  }
  return null;
}

function stripPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end > 0 ? host.slice(0, end + 1) : host;
  }
  const i = host.lastIndexOf(':');
  return i > 0 && host.indexOf(':') === i ? host.slice(0, i) : host;
}

function bestDomainMatch(vhs: readonly VirtualHost[], host: string): VirtualHost | null {
  let suffix: [number, VirtualHost] | null = null;
  let prefix: [number, VirtualHost] | null = null;
  let star: VirtualHost | null = null;
  for (const vh of vhs) {
    for (const d of vh.domains) {
      if (d === host) return vh;
      if (d === '*') { star ??= vh; continue; }
      if (d.startsWith('*') && host.endsWith(d.slice(1)) && host.length > d.length - 1) {
        if (!suffix || d.length > suffix[0]) suffix = [d.length, vh];
      } else if (d.endsWith('*') && host.startsWith(d.slice(0, -1)) && host.length > d.length - 1) {
        if (!prefix || d.length > prefix[0]) prefix = [d.length, vh];
      }
    }
  }
  return suffix?.[1] ?? prefix?.[1] ?? star;
}

export function selectRoute(vh: VirtualHost, input: RouteInput): Route | null {
  const q = input.path.indexOf('?');
  const path = q < 0 ? input.path : input.path.slice(0, q);
  const query = q < 0 ? null : new URLSearchParams(input.path.slice(q + 1));
  for (const r of vh.routes) if (routeMatches(r.match, path, query, input)) return r;
  return null;
}

export function routeMatches(m: RouteMatch, path: string, query: URLSearchParams | null, input: RouteInput): boolean {
  const p = m.caseSensitive ? path : path.toLowerCase();
  const v = m.caseSensitive ? m.value : m.value.toLowerCase();
  switch (m.kind) {
    case 'prefix': if (!p.startsWith(v)) return false; break;
    case 'path': if (p !== v) return false; break;
    case 'path_separated_prefix': if (!(p === v || p.startsWith(v + '/'))) return false; break;
    case 'regex': if (!m.regex!.test(path)) return false; break;
  }
  for (const h of m.headers) if (!headerMatches(h, input.header(h.name))) return false;
  for (const qm of m.queryParameters) if (!queryMatches(qm, query)) return false;
  return true;
}

function headerMatches(h: HeaderMatch, value: string | undefined): boolean {
  let ok: boolean;
  if (h.match === null) ok = h.present ? value !== undefined : value === undefined;
  else ok = value !== undefined && matchString(h.match, value);
  return h.invert ? !ok : ok;
}

function queryMatches(q: QueryMatch, query: URLSearchParams | null): boolean {
  const v = query?.get(q.name);
  if (v === null || v === undefined) return false;
  return q.match === null || matchString(q.match, v);
}
