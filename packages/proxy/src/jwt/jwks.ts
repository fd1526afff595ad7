/**
 * JSON Web Key Sets → public keys (node:crypto). RSA keys serve RS256/384/512 and PS256/384/512 tokens, EC keys (P-256, P-384, P-521) serve
 * ES256/ES384/ES512. A key of another type (oct, OKP) or one that does not import is skipped; a set with no usable
 * key is `Jwks doesn't have any valid public key`. A PEM public key (Envoy accepts one in place of a JWKS) is one
 * key without `kid`/`alg`.
 */
import { type KeyObject, createPublicKey } from 'node:crypto';
import { JwtStatus, type JwtStatusText } from './status.js';

export interface PublicJwk {
  readonly kid: string | null;
  /** The key's `alg`, when it names one: the token's `alg` must then be the same. */
  readonly alg: string | null;
  readonly kty: 'RSA' | 'EC';
  /** For EC keys: P-256, P-384, P-521. */
  readonly crv: string | null;
  readonly key: KeyObject;
}

export interface KeySet {
  /** Ok, or why there are no keys (parse error, fetch failure). */
  readonly status: JwtStatusText;
  readonly keys: readonly PublicJwk[];
}

export const EMPTY_KEYS: KeySet = Object.freeze({ status: JwtStatus.JwksNoValidKeys, keys: Object.freeze([]) });

function importJwk(k: Record<string, unknown>): PublicJwk | null {
  const kid = typeof k.kid === 'string' ? k.kid : null;
  const alg = typeof k.alg === 'string' ? k.alg : null;
  try {
    if (k.kty === 'RSA') {
      if (typeof k.n !== 'string' || typeof k.e !== 'string') return null;
      if (alg !== null && !/^(RS|PS)/.test(alg)) return null;
      return { kid, alg, kty: 'RSA', crv: null, key: createPublicKey({ key: { kty: 'RSA', n: k.n, e: k.e }, format: 'jwk' }) };
    }
    if (k.kty === 'EC') {
      if (typeof k.crv !== 'string' || typeof k.x !== 'string' || typeof k.y !== 'string') return null;
      if (!['P-256', 'P-384', 'P-521'].includes(k.crv)) return null;
      if (alg !== null && !alg.startsWith('ES')) return null;
      return { kid, alg, kty: 'EC', crv: k.crv, key: createPublicKey({ key: { kty: 'EC', crv: k.crv, x: k.x, y: k.y }, format: 'jwk' }) };
    }
  } catch {
    return null;
  }
  return null;
}

/** Parses a JWKS document (or a PEM public key). Never throws: a bad document gives a set with a failure status. */
export function parseJwks(text: string): KeySet {
  const t = text.trim();
  if (t.startsWith('-----BEGIN')) {
    // Public keys only (createPublicKey would also derive one from a private key someone pasted by mistake).
    if (!/^-----BEGIN (RSA )?PUBLIC KEY-----/.test(t)) return EMPTY_KEYS;
    try {
      const key = createPublicKey(t);
      const kty = key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss' ? 'RSA' : key.asymmetricKeyType === 'ec' ? 'EC' : null;
      if (kty === null) return EMPTY_KEYS;
      const crv = kty === 'EC' ? ({ prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' } as Record<string, string>)[key.asymmetricKeyDetails?.namedCurve ?? ''] ?? null : null;
      return Object.freeze({ status: JwtStatus.Ok, keys: Object.freeze([Object.freeze({ kid: null, alg: null, kty, crv, key })]) });
    } catch {
      return EMPTY_KEYS;
    }
  }
  let doc: unknown;
  try {
    doc = JSON.parse(t);
  } catch {
    return Object.freeze({ status: JwtStatus.JwksParseError, keys: Object.freeze([]) });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return Object.freeze({ status: JwtStatus.JwksParseError, keys: Object.freeze([]) });
  const list = (doc as Record<string, unknown>).keys;
  if (list === undefined) return Object.freeze({ status: JwtStatus.JwksNoKeys, keys: Object.freeze([]) });
  if (!Array.isArray(list)) return Object.freeze({ status: JwtStatus.JwksBadKeys, keys: Object.freeze([]) });
  const keys: PublicJwk[] = [];
  for (const k of list) {
    if (typeof k !== 'object' || k === null || Array.isArray(k)) continue;
    const j = importJwk(k as Record<string, unknown>);
    if (j) keys.push(Object.freeze(j));
  }
  if (keys.length === 0) return EMPTY_KEYS;
  return Object.freeze({ status: JwtStatus.Ok, keys: Object.freeze(keys) });
}
