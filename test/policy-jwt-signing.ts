/** Test helpers: key pairs and compact JWS tokens signed with node:crypto (no JWT library). */
import { type KeyObject, constants, generateKeyPairSync, sign } from 'node:crypto';

export interface TestKey {
  readonly alg: string;
  readonly kid: string;
  readonly privateKey: KeyObject;
  /** The public JWK with `kid` and `alg`. */
  readonly jwk: Record<string, unknown>;
}

export function makeKey(alg: string, kid: string): TestKey {
  const { privateKey, publicKey } = alg.startsWith('ES')
    ? generateKeyPairSync('ec', { namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg]! })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { alg, kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

export function jwks(...keys: TestKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.jwk) });
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs `payload` with the key; `header` overrides/extends `{alg, typ, kid}`. */
export function signJwt(key: TestKey, payload: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const alg = (header.alg as string | undefined) ?? key.alg;
  const input = `${b64({ alg, typ: 'JWT', kid: key.kid, ...header })}.${b64(payload)}`;
  const hash = `sha${alg.slice(2)}`;
  const data = Buffer.from(input);
  const sig = alg.startsWith('PS') ? sign(hash, data, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST })
    : alg.startsWith('ES') ? sign(hash, data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
    : sign(hash, data, key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

/** An unsigned token (`alg: none`). */
export function unsignedJwt(payload: Record<string, unknown>): string {
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
}
