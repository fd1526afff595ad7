/**
 * Compact JWS tokens (RFC 7515/7519): parsing, claim checks and signature verification with node:crypto, in the
 * order Envoy's authenticator applies them — format, issuer, time (`nbf`/`exp` with the provider's clock skew),
 * audiences, then the signature against the key set. Supported `alg`: RS256/384/512, PS256/384/512,
 * ES256/384/512. `none` and HMAC algorithms are refused (`Jwt header [alg] is not supported`).
 */
import { constants, verify as cryptoVerify } from 'node:crypto';
import type { JwtProvider } from '@trellis/api';
import type { KeySet, PublicJwk } from './jwks.js';
import { JwtStatus, type JwtStatusText } from './status.js';

export interface ParsedJwt {
  /** The token as sent. */
  readonly raw: string;
  readonly alg: string;
  readonly kid: string | null;
  /** The payload segment as sent (base64url), for `forward_payload_header`. */
  readonly payloadB64: string;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly iss: string;
  readonly audiences: readonly string[];
  /** Seconds since the epoch; 0 = absent. */
  readonly exp: number;
  readonly nbf: number;
  readonly iat: number;
  /** `header.payload`, the signed bytes. */
  readonly signingInput: string;
  readonly signature: Buffer;
}

const ALGS: Readonly<Record<string, { readonly hash: string; readonly family: 'RS' | 'PS' | 'ES'; readonly crv?: string }>> = Object.freeze({
  RS256: { hash: 'sha256', family: 'RS' }, RS384: { hash: 'sha384', family: 'RS' }, RS512: { hash: 'sha512', family: 'RS' },
  PS256: { hash: 'sha256', family: 'PS' }, PS384: { hash: 'sha384', family: 'PS' }, PS512: { hash: 'sha512', family: 'PS' },
  ES256: { hash: 'sha256', family: 'ES', crv: 'P-256' }, ES384: { hash: 'sha384', family: 'ES', crv: 'P-384' }, ES512: { hash: 'sha512', family: 'ES', crv: 'P-521' },
});

const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;

function decodeSegment(s: string): Buffer | null {
  return B64URL.test(s) ? Buffer.from(s, 'base64url') : null;
}

function jsonObject(b: Buffer): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(b.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function intClaim(p: Record<string, unknown>, k: string): number | null {
  const v = p[k];
  if (v === undefined) return 0;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

/** Parses a token; a malformed one gives the Envoy status saying what is wrong with it. */
export function parseJwt(raw: string): ParsedJwt | JwtStatusText {
  const parts = raw.split('.');
  if (parts.length !== 3) return JwtStatus.JwtBadFormat;
  const [h, p, s] = parts as [string, string, string];
  const hb = decodeSegment(h);
  if (hb === null || h === '') return JwtStatus.JwtHeaderParseErrorBadBase64;
  const header = jsonObject(hb);
  if (header === null) return JwtStatus.JwtHeaderParseErrorBadJson;
  if (typeof header.alg !== 'string') return JwtStatus.JwtHeaderBadAlg;
  if (!Object.hasOwn(ALGS, header.alg)) return JwtStatus.JwtHeaderNotImplementedAlg;
  if (header.kid !== undefined && typeof header.kid !== 'string') return JwtStatus.JwtHeaderBadKid;
  const pb = decodeSegment(p);
  if (pb === null || p === '') return JwtStatus.JwtPayloadParseErrorBadBase64;
  const payload = jsonObject(pb);
  if (payload === null) return JwtStatus.JwtPayloadParseErrorBadJson;
  if (payload.iss !== undefined && typeof payload.iss !== 'string') return JwtStatus.JwtPayloadParseErrorIssNotString;
  if (payload.sub !== undefined && typeof payload.sub !== 'string') return JwtStatus.JwtPayloadParseErrorSubNotString;
  const aud = payload.aud;
  let audiences: string[];
  if (aud === undefined) audiences = [];
  else if (typeof aud === 'string') audiences = [aud];
  else if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) audiences = aud as string[];
  else return JwtStatus.JwtPayloadParseErrorAudNotString;
  const exp = intClaim(payload, 'exp');
  if (exp === null) return JwtStatus.JwtPayloadParseErrorExpNotInteger;
  const nbf = intClaim(payload, 'nbf');
  if (nbf === null) return JwtStatus.JwtPayloadParseErrorNbfNotInteger;
  const iat = intClaim(payload, 'iat') ?? 0;
  const sig = decodeSegment(s);
  if (sig === null) return JwtStatus.JwtSignatureParseErrorBadBase64;
  return Object.freeze({
    raw, alg: header.alg, kid: typeof header.kid === 'string' ? header.kid : null, payloadB64: p, payload: Object.freeze(payload),
    iss: typeof payload.iss === 'string' ? payload.iss : '', audiences: Object.freeze(audiences), exp, nbf, iat,
    signingInput: `${h}.${p}`, signature: sig,
  });
}

/** Envoy compares audiences without an `http(s)://` scheme and a trailing slash. */
function sanitizeAudience(a: string): string {
  let s = a.startsWith('https://') ? a.slice(8) : a.startsWith('http://') ? a.slice(7) : a;
  if (s.endsWith('/')) s = s.slice(0, -1);
  return s;
}

/**
 * The checks that need no key: issuer, time window, lifetime, audiences. `audiences` overrides the provider's
 * (`provider_and_audiences`); `nowMs` is the proxy's clock.
 */
export function checkClaims(jwt: ParsedJwt, provider: JwtProvider, nowMs: number, audiences: readonly string[] | null = null): JwtStatusText {
  if (provider.issuer !== null && jwt.iss !== provider.issuer) return JwtStatus.JwtUnknownIssuer;
  const now = Math.floor(nowMs / 1000);
  const skew = provider.clockSkewSeconds;
  if (jwt.nbf !== 0 && now + skew < jwt.nbf) return JwtStatus.JwtNotYetValid;
  if (jwt.exp !== 0 && now > jwt.exp + skew) return JwtStatus.JwtExpired;
  if (jwt.exp === 0 && (provider.requireExpiration || provider.maxLifetimeMs !== null)) return JwtStatus.JwtExpired;
  if (provider.maxLifetimeMs !== null && (jwt.iat === 0 || (jwt.exp - jwt.iat) * 1000 > provider.maxLifetimeMs)) return JwtStatus.JwtExpired;
  const allowed = audiences ?? provider.audiences;
  if (allowed.length > 0) {
    const want = new Set(allowed.map(sanitizeAudience));
    if (!jwt.audiences.some((a) => want.has(sanitizeAudience(a)))) return JwtStatus.JwtAudienceNotAllowed;
  }
  return JwtStatus.Ok;
}

function keyFits(k: PublicJwk, jwt: ParsedJwt): boolean {
  const a = ALGS[jwt.alg]!;
  if (jwt.kid !== null && k.kid !== null && k.kid !== jwt.kid) return false;
  if (k.alg !== null && k.alg !== jwt.alg) return false;
  if (a.family === 'ES') return k.kty === 'EC' && k.crv === a.crv;
  return k.kty === 'RSA';
}

function verifyWith(k: PublicJwk, jwt: ParsedJwt): boolean {
  const a = ALGS[jwt.alg]!;
  const data = Buffer.from(jwt.signingInput, 'latin1');
  try {
    if (a.family === 'RS') return cryptoVerify(a.hash, data, k.key, jwt.signature);
    if (a.family === 'PS') return cryptoVerify(a.hash, data, { key: k.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, jwt.signature);
    return cryptoVerify(a.hash, data, { key: k.key, dsaEncoding: 'ieee-p1363' }, jwt.signature);
  } catch {
    return false;
  }
}

/**
 * Verifies the signature against the set: `Ok`; `Jwt verification fails` when a fitting key (kid, alg, key type)
 * exists but none verifies; `Jwks doesn't have key to match kid or alg from Jwt` when no key fits; the set's own
 * status when it has no keys.
 */
export function verifySignature(jwt: ParsedJwt, ks: KeySet): JwtStatusText {
  if (ks.status !== JwtStatus.Ok) return ks.status;
  let fitted = false;
  for (const k of ks.keys) {
    if (!keyFits(k, jwt)) continue;
    fitted = true;
    if (verifyWith(k, jwt)) return JwtStatus.Ok;
  }
  return fitted ? JwtStatus.JwtVerificationFail : JwtStatus.JwksKidAlgMismatch;
}
