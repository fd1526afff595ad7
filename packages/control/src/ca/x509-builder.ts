/**
 * Builds and signs X.509 v3 certificates (RFC 5280) with `node:crypto`.
 *
 * The issuer name is copied byte for byte from the issuing certificate's subject, so chains under a plug-in
 * (company) CA match whatever string types that CA used; the subject public key is copied byte for byte from the
 * CSR, so RSA and ECDSA keys are handled alike. Signing is RSA PKCS#1 v1.5 with SHA-256 for RSA CA keys and
 * ECDSA with SHA-256/384 for EC CA keys.
 */
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { TrellisError } from '@trellis/api';
import {
  bitString, bool, children, ctx, expectTag, int, namedBits, nullValue, octets, oid, parseOne, readBitString, seq, set,
  TAG, time, uint, utf8,
} from './der.js';

const EXT = Object.freeze({
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
});
const EKU = Object.freeze({ serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' });
/** keyUsage bit numbers (RFC 5280 §4.2.1.3). */
export const KEY_USAGE = Object.freeze({ digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 });

export interface SignerKey {
  readonly key: KeyObject;
  /** AlgorithmIdentifier DER for the signature this key makes. */
  readonly algorithm: Buffer;
  readonly hash: string;
}

/** The signature algorithm for a CA private key; RSA and EC (P-256/P-384) keys are supported. */
export function signerFor(key: KeyObject): SignerKey {
  if (key.asymmetricKeyType === 'rsa') {
    return { key, algorithm: seq(oid('1.2.840.113549.1.1.11'), nullValue()), hash: 'sha256' };
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'secp384r1') return { key, algorithm: seq(oid('1.2.840.10045.4.3.3')), hash: 'sha384' };
    if (curve === 'prime256v1') return { key, algorithm: seq(oid('1.2.840.10045.4.3.2')), hash: 'sha256' };
  }
  throw new TrellisError('TRELLIS_ERR_CA_KEY_TYPE',
    `CA key type ${key.asymmetricKeyType ?? 'unknown'} is not supported; use RSA or ECDSA P-256/P-384`);
}

/** A Name with O and CN (either may be omitted); the empty Name when both are. */
export function name(parts: { organization?: string; commonName?: string }): Buffer {
  const rdns: Buffer[] = [];
  if (parts.organization) rdns.push(set(seq(oid('2.5.4.10'), utf8(parts.organization))));
  if (parts.commonName) rdns.push(set(seq(oid('2.5.4.3'), utf8(parts.commonName))));
  return seq(...rdns);
}

/** Key identifier per RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  const [, bits] = children(expectTag(parseOne(spki), TAG.SEQUENCE, 'SubjectPublicKeyInfo'));
  return createHash('sha1').update(readBitString(bits).bytes).digest();
}

/** 128 random bits, positive, minimally encoded (first octet non-zero). */
export function randomSerial(): Buffer {
  const b = randomBytes(16);
  if (b[0] === 0) b[0] = 1;
  return b;
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

export function ipBytes(ip: string): Buffer {
  const kind = isIP(ip);
  if (kind === 4) return Buffer.from(ip.split('.').map(Number));
  if (kind === 6) {
    // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two hex groups; then "::" expands to the missing zeros.
    const text = ip.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
      `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`);
    const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
    const halves = text.split('::');
    const all = halves.length === 2
      ? [...groups(halves[0]), ...new Array<number>(8 - groups(halves[0]).length - groups(halves[1]).length).fill(0), ...groups(halves[1])]
      : groups(text);
    const out = Buffer.alloc(16);
    all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
    return out;
  }
  throw new TrellisError('TRELLIS_ERR_CA_BAD_NAME', `not an IP address: ${JSON.stringify(ip)}`);
}

export interface CertificateTemplate {
  readonly serial: Buffer;
  readonly issuerName: Buffer;
  readonly subjectName: Buffer;
  readonly spki: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly isCa: boolean;
  /** Only for CA certificates. */
  readonly pathLength?: number;
  readonly uris?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** The issuer's key identifier (for authorityKeyIdentifier); omitted for self-signed roots. */
  readonly authorityKeyId?: Buffer;
}

/** Builds the TBSCertificate, signs it, and returns the certificate's DER. */
export function buildCertificate(t: CertificateTemplate, signer: SignerKey): Buffer {
  const exts: Buffer[] = [];
  if (t.isCa) {
    exts.push(extension(EXT.basicConstraints, true, seq(bool(true), ...(t.pathLength === undefined ? [] : [int(t.pathLength)]))));
    exts.push(extension(EXT.keyUsage, true, namedBits([KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign])));
  } else {
    exts.push(extension(EXT.basicConstraints, true, seq()));
    exts.push(extension(EXT.keyUsage, true, namedBits([KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment])));
    exts.push(extension(EXT.extKeyUsage, false, seq(oid(EKU.serverAuth), oid(EKU.clientAuth))));
  }
  exts.push(extension(EXT.subjectKeyIdentifier, false, octets(keyIdentifier(t.spki))));
  if (t.authorityKeyId) exts.push(extension(EXT.authorityKeyIdentifier, false, seq(ctx(0, false, t.authorityKeyId))));
  const names: Buffer[] = [
    ...(t.dnsNames ?? []).map((d) => ctx(2, false, Buffer.from(d, 'ascii'))),
    ...(t.ipAddresses ?? []).map((ip) => ctx(7, false, ipBytes(ip))),
    ...(t.uris ?? []).map((u) => ctx(6, false, Buffer.from(u, 'ascii'))),
  ];
  if (names.length > 0) {
    // RFC 5280 §4.2.1.6: with an empty subject the SAN extension must be critical.
    const emptySubject = t.subjectName.length === 2;
    exts.push(extension(EXT.subjectAltName, emptySubject, seq(...names)));
  }
  const tbs = seq(
    ctx(0, true, int(2)),
    uint(t.serial),
    signer.algorithm,
    t.issuerName,
    seq(time(t.notBefore), time(t.notAfter)),
    t.subjectName,
    t.spki,
    ctx(3, true, seq(...exts)),
  );
  const signature = sign(signer.hash, tbs, signer.key);
  return seq(tbs, signer.algorithm, bitString(signature));
}

/** The parts of a certificate the CA needs from its own (issuing) certificate. */
export function readCertificateParts(der: Buffer): { subjectName: Buffer; spki: Buffer; subjectKeyId?: Buffer } {
  const [tbs] = children(expectTag(parseOne(der), TAG.SEQUENCE, 'Certificate'));
  const fields = children(expectTag(tbs, TAG.SEQUENCE, 'TBSCertificate'));
  const base = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subjectName = expectTag(fields[base + 4], TAG.SEQUENCE, 'subject').raw;
  const spki = expectTag(fields[base + 5], TAG.SEQUENCE, 'subjectPublicKeyInfo').raw;
  let subjectKeyId: Buffer | undefined;
  const extWrapper = fields.slice(base + 6).find((f) => f.tag === 0xa3);
  if (extWrapper) {
    for (const ext of children(children(extWrapper)[0])) {
      const parts = children(ext);
      const { content } = parts[0];
      if (oid(EXT.subjectKeyIdentifier).subarray(2).equals(content)) {
        subjectKeyId = Buffer.from(parseOne(parts[parts.length - 1].content).content);
      }
    }
  }
  return { subjectName: Buffer.from(subjectName), spki: Buffer.from(spki), subjectKeyId };
}
