/**
 * Path normalization, Envoy's HCM `normalize_path` and `merge_slashes` (Istio sets both on inbound listeners), done
 * before routing, jwt_authn and RBAC. The rewritten path is what every later layer matches AND what the upstream
 * receives, so a decision is always made on the path the application sees.
 *
 * `normalize_path` (Envoy's canonicalPath, Chromium's URL path canonicalizer):
 *   - `\` becomes `/`;
 *   - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded (`/%61dmin` → `/admin`,
 *     `/%2e%2e/` → `/../`); every other escape is kept, with its hex digits uppercased (`%2f` → `%2F`):
 *     `%2F` and `%5C` stay encoded (Envoy's default `path_with_escaped_slashes_action: KEEP_UNCHANGED`);
 *   - characters that may not appear raw in a path (controls, space, `"<>{}` and backquote, non-ASCII) are
 *     percent-encoded;
 *   - `.` and `..` segments are removed (RFC 3986 §5.2.4 remove_dot_segments; `..` never climbs above `/`).
 * `merge_slashes`: runs of `/` become one (after normalize_path, as Envoy orders them).
 * The query is kept verbatim; a fragment (`#…`, which clients never send) is dropped.
 *
 * Refused with 400 (details `path_normalization_failed`): an invalid percent-encoding (`%` not followed by two hex
 * digits) and a path that does not start with `/` (after absolute-form `http://host/path` is split into
 * authority and path, which this layer does for every HCM, normalizing or not, as Envoy's codec does).
 */
import { type HttpContext, type Layer, localReply } from '../context.js';

export interface PathNormalization {
  readonly normalizePath: boolean;
  readonly mergeSlashes: boolean;
}

export type NormalizeResult = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

const HEX = '0123456789ABCDEF';

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

/** Characters Chromium's path canonicalizer escapes when they appear raw. */
function mustEscape(c: number): boolean {
  return c <= 0x20 || c >= 0x7f || c === 0x22 || c === 0x3c || c === 0x3e || c === 0x60 || c === 0x7b || c === 0x7d;
}

function escapeChar(ch: string): string {
  const c = ch.charCodeAt(0);
  // node:http hands the request-target over as latin1 (one char per byte); HTTP/2 :path may carry wider chars.
  const bytes = c <= 0xff ? [c] : [...Buffer.from(ch, 'utf8')];
  return bytes.map((b) => `%${HEX[b >> 4]}${HEX[b & 15]}`).join('');
}

/** The first pass of normalize_path: backslashes, escapes, raw characters. */
function canonicalChars(p: string): NormalizeResult {
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 0x25) {
      const h = i + 2 < p.length ? hexVal(p.charCodeAt(i + 1)) : -1;
      const l = h >= 0 ? hexVal(p.charCodeAt(i + 2)) : -1;
      if (h < 0 || l < 0) return { ok: false, reason: `invalid percent-encoding at offset ${i}` };
      const v = h * 16 + l;
      out += isUnreserved(v) ? String.fromCharCode(v) : `%${HEX[h]}${HEX[l]}`;
      i += 2;
    } else if (c === 0x5c) {
      out += '/';
    } else if (mustEscape(c)) {
      out += escapeChar(p[i]!);
    } else {
      out += p[i];
    }
  }
  return { ok: true, path: out };
}

/** RFC 3986 §5.2.4 over an absolute path (starts with `/`). */
export function removeDotSegments(path: string): string {
  const segs = path.split('/');
  // segs[0] is '' (the leading slash)
  const out: string[] = [];
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    const last = i === segs.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else {
      out.push(s);
    }
  }
  return `/${out.join('/')}`;
}

/** Anything normalize_path or merge_slashes could change: an escape, a backslash, a dot segment, `//`, a raw character to escape. */
const NEEDS_WORK = /[%\\"<>`{}]|\/\.|\/\/|[^\x21-\x7e]/;

/** Normalizes a request-target in origin form (`/path?query#fragment`). Pure. */
export function normalizeRequestPath(target: string, o: PathNormalization): NormalizeResult {
  let t = target;
  const hash = t.indexOf('#');
  if (hash >= 0) t = t.slice(0, hash);
  const q = t.indexOf('?');
  let path = q < 0 ? t : t.slice(0, q);
  const query = q < 0 ? '' : t.slice(q);
  if (path.charCodeAt(0) !== 47 && !(o.normalizePath && path.charCodeAt(0) === 0x5c)) return { ok: false, reason: 'path does not start with /' };
  // Fast path: nothing to decode, escape, resolve or merge (the common request).
  if (!NEEDS_WORK.test(path)) return { ok: true, path: path + query };
  if (o.normalizePath) {
    const c = canonicalChars(path);
    if (!c.ok) return c;
    path = removeDotSegments(c.path);
  }
  if (o.mergeSlashes) path = path.replace(/\/{2,}/g, '/');
  return { ok: true, path: path + query };
}

/** `scheme://authority/path` → its authority and origin-form path (`/` when it has none); null when not absolute-form. */
export function splitAbsoluteForm(target: string): { authority: string; path: string } | null {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)(.*)$/s.exec(target);
  if (!m) return null;
  const rest = m[2] ?? '';
  return { authority: m[1] ?? '', path: rest === '' ? '/' : rest.startsWith('/') ? rest : `/${rest}` };
}

function reject(ctx: HttpContext): void {
  ctx.responseCodeDetails = 'path_normalization_failed';
  localReply(ctx, 400, 'Bad Request');
}

export function normalizePathLayer(): Layer {
  return (next) => (ctx) => {
    // Absolute-form (`GET http://host/admin`): Envoy's codec splits it for every HCM; so do we, or a rule on
    // `/admin` would not see it while the upstream would.
    if (ctx.path.charCodeAt(0) !== 47 && ctx.path !== '*') {
      const abs = splitAbsoluteForm(ctx.path);
      if (abs) {
        ctx.path = abs.path;
        if (abs.authority !== '') ctx.authority = abs.authority;
      }
    }
    const hcm = ctx.conn.hcm;
    if (!hcm.normalizePath && !hcm.mergeSlashes) { next(ctx); return; }
    if (ctx.path === '*' && ctx.method === 'OPTIONS') { next(ctx); return; }
    const r = normalizeRequestPath(ctx.path, hcm);
    if (!r.ok) { reject(ctx); return; }
    ctx.path = r.path;
    next(ctx);
  };
}
