/**
 * One jwt_authn filter config, compiled: providers with their token locations and key sources, the rules, and the
 * evaluation of a requirement tree for a request (Envoy's verifier semantics):
 * - `provider`: a token at one of the provider's locations must verify with it; none there → `Jwt is missing`;
 *   several → the first that verifies wins, otherwise the last failure is reported;
 * - `requires_any`: one child passes; otherwise the last failure that is not `Jwt is missing`, or that;
 * - `requires_all`: every child passes; otherwise the first failure;
 * - `allow_missing`: passes when no token is present at any location of any provider; a token that is present
 *   must verify with a provider of its issuer;
 * - `allow_missing_or_failed`: always passes (tokens that verify still produce their payload).
 * A request is decided synchronously unless a verification has to wait for a JWKS fetch.
 */
import type { JwtAuthnConfig, JwtProvider, JwtRequirement } from '@trellis/api';
import { routeMatches } from '../http/router.js';
import { extractTokens, type FoundToken, locationsOf, type TokenLocation } from './extract.js';
import type { KeySet } from './jwks.js';
import type { KeySource, KeySources } from './key-source.js';
import { JwtStatus, type JwtStatusText } from './status.js';
import { checkClaims, type ParsedJwt, parseJwt, verifySignature } from './token.js';

/** Envoy's default JWT cache size (verified tokens per provider). */
const TOKEN_CACHE_SIZE = 100;

export class CompiledProvider {
  readonly locations: readonly TokenLocation[];
  readonly locationKeys: ReadonlySet<string>;
  /** token → key-set version it verified with (insertion order = age). */
  private readonly verified = new Map<string, number>();

  constructor(readonly p: JwtProvider, readonly keys: KeySource) {
    this.locations = locationsOf(p);
    this.locationKeys = new Set(this.locations.map((l) => l.key));
  }

  /** Claims, then the signature (fetching keys when needed, refetching once for an unknown `kid`). */
  verify(jwt: ParsedJwt, nowMs: number, audiences: readonly string[] | null): JwtStatusText | Promise<JwtStatusText> {
    const c = checkClaims(jwt, this.p, nowMs, audiences);
    if (c !== JwtStatus.Ok) return c;
    if (this.verified.get(jwt.raw) === this.keys.version) return JwtStatus.Ok;
    const ks = this.keys.keys();
    if (ks instanceof Promise) return ks.then((set) => this.signature(jwt, set));
    return this.signature(jwt, ks);
  }

  private signature(jwt: ParsedJwt, ks: KeySet): JwtStatusText | Promise<JwtStatusText> {
    const s = verifySignature(jwt, ks);
    if (s === JwtStatus.JwksKidAlgMismatch) {
      const again = this.keys.refetchForUnknownKid();
      if (again) return again.then((ks2) => this.remember(jwt, verifySignature(jwt, ks2)));
    }
    return this.remember(jwt, s);
  }

  private remember(jwt: ParsedJwt, s: JwtStatusText): JwtStatusText {
    if (s === JwtStatus.Ok) {
      if (this.verified.size >= TOKEN_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(jwt.raw, this.keys.version);
    }
    return s;
  }
}

export interface VerifiedToken {
  readonly provider: CompiledProvider;
  readonly found: FoundToken;
  readonly jwt: ParsedJwt;
}

export interface AuthnOutcome {
  readonly status: JwtStatusText;
  /** Tokens that verified, with their provider (for metadata, claim headers, token removal). */
  readonly verified: readonly VerifiedToken[];
  /** The `iss` of the first token that parsed, verified or not (for denial events). */
  readonly issuer: string | null;
}

/** Request facts the rules match on. */
export interface AuthnRequest {
  readonly method: string;
  readonly authority: string;
  /** Path with query. */
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
}

export class JwtAuthenticator {
  readonly providers = new Map<string, CompiledProvider>();
  /** Every provider's locations, each once. */
  readonly allLocations: readonly TokenLocation[];
  /** Headers a client must not set itself: the payload and claim headers the filter writes. */
  readonly protectedHeaders: readonly string[];
  /** Recently seen tokens, parsed (a client sends the same token many times); bounded, oldest out first. */
  private readonly parsedTokens = new Map<string, ParsedJwt | JwtStatusText>();
  /** Whether a rule matches on query parameters (otherwise the query is not parsed per request). */
  private readonly rulesReadQuery: boolean;

  constructor(readonly config: JwtAuthnConfig, sources: KeySources, private readonly now: () => number) {
    const locs = new Map<string, TokenLocation>();
    const prot = new Set<string>();
    for (const [name, p] of Object.entries(config.providers)) {
      const cp = new CompiledProvider(p, sources.for(p.jwks));
      this.providers.set(name, cp);
      for (const l of cp.locations) if (!locs.has(l.key)) locs.set(l.key, l);
      if (p.forwardPayloadHeader !== null) prot.add(p.forwardPayloadHeader);
      for (const c of p.claimToHeaders) prot.add(c.headerName);
    }
    this.allLocations = Object.freeze([...locs.values()]);
    this.protectedHeaders = Object.freeze([...prot]);
    this.rulesReadQuery = config.rules.some((r) => r.match.queryParameters.length > 0);
  }

  /** The requirement of the first rule matching the request; null = no verification. */
  requirementFor(r: AuthnRequest): JwtRequirement | null {
    const rules = this.config.rules;
    if (rules.length === 0) return null;
    const q = r.path.indexOf('?');
    const path = q < 0 ? r.path : r.path.slice(0, q);
    const query = q < 0 || !this.rulesReadQuery ? null : new URLSearchParams(r.path.slice(q + 1));
    const input = {
      authority: r.authority, path: r.path,
      header: (n: string) => { if (n === ':method') return r.method; if (n === ':authority') return r.authority; const v = r.headers[n]; return Array.isArray(v) ? v.join(',') : v; },
    };
    for (const rule of rules) if (routeMatches(rule.match, path, query, input)) return rule.requires;
    return null;
  }

  /** Parses a token, or returns it from the recent-token cache. */
  parse(token: string): ParsedJwt | JwtStatusText {
    let p = this.parsedTokens.get(token);
    if (p === undefined) {
      p = parseJwt(token);
      if (this.parsedTokens.size >= TOKEN_CACHE_SIZE) this.parsedTokens.delete(this.parsedTokens.keys().next().value!);
      this.parsedTokens.set(token, p);
    }
    return p;
  }

  authenticate(req: JwtRequirement, r: AuthnRequest): AuthnOutcome | Promise<AuthnOutcome> {
    const found = extractTokens(this.allLocations, r.headers, r.path);
    if (found.length === 0) return { status: missingOutcome(req), verified: [], issuer: null };
    const run = new Run(this, found, this.now());
    const s = run.eval(req);
    if (s instanceof Promise) return s.then((status) => ({ status, verified: run.verified, issuer: run.issuer }));
    return { status: s, verified: run.verified, issuer: run.issuer };
  }
}

/** A requirement's result when the request carries no token at all. */
function missingOutcome(req: JwtRequirement): JwtStatusText {
  switch (req.kind) {
    case 'provider': return JwtStatus.JwtMissed;
    case 'allow_missing': case 'allow_missing_or_failed': return JwtStatus.Ok;
    case 'any': return req.requirements.some((c) => missingOutcome(c) === JwtStatus.Ok) ? JwtStatus.Ok : JwtStatus.JwtMissed;
    case 'all': return req.requirements.every((c) => missingOutcome(c) === JwtStatus.Ok) ? JwtStatus.Ok : JwtStatus.JwtMissed;
  }
}

type MaybePromise<T> = T | Promise<T>;

/**
 * One request's evaluation: parses each token once and verifies each (provider, token, audiences) once. Stays
 * synchronous while every key set is at hand (the common case), and continues asynchronously from the first
 * verification that has to wait for a JWKS fetch.
 */
class Run {
  readonly verified: VerifiedToken[] = [];
  issuer: string | null = null;
  private readonly parsed = new Map<string, ParsedJwt | JwtStatusText>();
  private readonly memo = new Map<string, MaybePromise<JwtStatusText>>();

  constructor(private readonly a: JwtAuthenticator, private readonly found: readonly FoundToken[], private readonly nowMs: number) {}

  private parse(token: string): ParsedJwt | JwtStatusText {
    let p = this.parsed.get(token);
    if (p === undefined) {
      p = this.a.parse(token);
      this.parsed.set(token, p);
      if (typeof p !== 'string' && this.issuer === null) this.issuer = p.iss;
    }
    return p;
  }

  private verifyOne(cp: CompiledProvider, f: FoundToken, audiences: readonly string[] | null): MaybePromise<JwtStatusText> {
    const key = audiences === null ? `${cp.p.name}\u0000\u0000${f.token}` : `${cp.p.name}\u0000${audiences.join('\u0001')}\u0000${f.token}`;
    let m = this.memo.get(key);
    if (m === undefined) {
      const jwt = this.parse(f.token);
      if (typeof jwt === 'string') m = jwt;
      else {
        const record = (s: JwtStatusText): JwtStatusText => {
          if (s === JwtStatus.Ok && !this.verified.some((v) => v.provider === cp && v.found.token === f.token)) this.verified.push({ provider: cp, found: f, jwt });
          return s;
        };
        const r = cp.verify(jwt, this.nowMs, audiences);
        m = r instanceof Promise ? r.then(record) : record(r);
      }
      this.memo.set(key, m);
    }
    return m;
  }

  /** The first token at the provider's locations that verifies; else the last failure (none: missing). */
  private withProvider(cp: CompiledProvider, audiences: readonly string[] | null): MaybePromise<JwtStatusText> {
    const step = (i: number, last: JwtStatusText): MaybePromise<JwtStatusText> => {
      for (; i < this.found.length; i++) {
        const f = this.found[i]!;
        if (!cp.locationKeys.has(f.location.key)) continue;
        const r = this.verifyOne(cp, f, audiences);
        if (r instanceof Promise) { const next = i + 1; return r.then((s) => (s === JwtStatus.Ok ? s : step(next, s))); }
        if (r === JwtStatus.Ok) return r;
        last = r;
      }
      return last;
    };
    return step(0, JwtStatus.JwtMissed);
  }

  /** Every present token must verify with a provider of its issuer reading that location (allow_missing). */
  private anyProvider(): MaybePromise<JwtStatusText> {
    const step = (i: number, last: JwtStatusText): MaybePromise<JwtStatusText> => {
      for (; i < this.found.length; i++) {
        const f = this.found[i]!;
        const jwt = this.parse(f.token);
        if (typeof jwt === 'string') { last = jwt; continue; }
        let cp: CompiledProvider | undefined;
        for (const c of this.a.providers.values()) {
          if (c.locationKeys.has(f.location.key) && (c.p.issuer === null || c.p.issuer === jwt.iss)) { cp = c; break; }
        }
        if (!cp) { last = JwtStatus.JwtUnknownIssuer; continue; }
        const r = this.verifyOne(cp, f, null);
        if (r instanceof Promise) { const next = i + 1; return r.then((s) => (s === JwtStatus.Ok ? s : step(next, s))); }
        if (r === JwtStatus.Ok) return r;
        last = r;
      }
      return last;
    };
    return step(0, JwtStatus.Ok);
  }

  eval(req: JwtRequirement): MaybePromise<JwtStatusText> {
    switch (req.kind) {
      case 'provider': return this.withProvider(this.a.providers.get(req.provider)!, req.audiences);
      case 'allow_missing': return this.anyProvider();
      case 'allow_missing_or_failed': { const r = this.anyProvider(); return r instanceof Promise ? r.then(() => JwtStatus.Ok) : JwtStatus.Ok; }
      case 'any': {
        // Ok when a child is; otherwise the last failure that is not "missing", or "missing".
        const step = (i: number, err: JwtStatusText): MaybePromise<JwtStatusText> => {
          for (; i < req.requirements.length; i++) {
            const r = this.eval(req.requirements[i]!);
            if (r instanceof Promise) { const next = i + 1; return r.then((s) => (s === JwtStatus.Ok ? s : step(next, s !== JwtStatus.JwtMissed ? s : err))); }
            if (r === JwtStatus.Ok) return r;
            if (r !== JwtStatus.JwtMissed) err = r;
          }
          return err;
        };
        return step(0, JwtStatus.JwtMissed);
      }
      case 'all': {
        const step = (i: number): MaybePromise<JwtStatusText> => {
          for (; i < req.requirements.length; i++) {
            const r = this.eval(req.requirements[i]!);
            if (r instanceof Promise) { const next = i + 1; return r.then((s) => (s !== JwtStatus.Ok ? s : step(next))); }
            if (r !== JwtStatus.Ok) return r;
          }
          return JwtStatus.Ok;
        };
        return step(0);
      }
    }
  }
}
