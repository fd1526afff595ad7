/**
 * Reads and checks a PKCS#10 certificate signing request (RFC 2986) from untrusted input.
 *
 * Parsed with our own strict DER reader rather than node-forge, because node-forge reads RSA keys only and
 * re-encodes what it parses; here the signed bytes are verified exactly as received, with `node:crypto`, for
 * RSA (2048–8192 bits) and ECDSA (P-256, P-384) keys. Everything in the CSR except its public key is advisory:
 * the CA uses the SAN and CA-ness only to refuse requests that ask for something the caller may not have.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { TrellisError } from '@trellis/api';
import {
  DerError, TAG, children, decodeOid, expectTag, parseOne, pemBlocks, readBitString, readBoolean, type Tlv,
} from './der.js';
import type { RefusalCode } from './refusals.js';

export const MAX_CSR_BYTES = 64 * 1024;
export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 8192;
const ACCEPTED_CURVES: Readonly<Record<string, string>> = Object.freeze({ prime256v1: 'P-256', secp384r1: 'P-384' });

const OID = Object.freeze({
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
});

/** Signature algorithms accepted on a CSR, with the key type each requires. SHA-1 is refused. */
const SIGNATURE_ALGORITHMS: Readonly<Record<string, { hash: string; keyType: 'rsa' | 'ec'; name: string }>> = Object.freeze({
  '1.2.840.113549.1.1.11': { hash: 'sha256', keyType: 'rsa', name: 'sha256WithRSAEncryption' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', keyType: 'rsa', name: 'sha384WithRSAEncryption' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', keyType: 'rsa', name: 'sha512WithRSAEncryption' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', keyType: 'ec', name: 'ecdsa-with-SHA256' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', keyType: 'ec', name: 'ecdsa-with-SHA384' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', keyType: 'ec', name: 'ecdsa-with-SHA512' },
});
const WEAK_SIGNATURE_NAMES: Readonly<Record<string, string>> = Object.freeze({
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
});

/** One SAN entry as asked for, e.g. `{ type: 'URI', value: 'spiffe://…' }` or `{ type: 'DNS', value: 'a.b' }`. */
export interface RequestedName {
  readonly type: 'URI' | 'DNS' | 'IP' | 'email' | 'other';
  readonly value: string;
}

export interface ParsedCsr {
  /** The SubjectPublicKeyInfo, byte for byte as in the CSR; copied into the certificate. */
  readonly spki: Buffer;
  readonly publicKey: KeyObject;
  /** e.g. `RSA 2048`, `EC P-256`. */
  readonly keyDescription: string;
  readonly requestedNames: readonly RequestedName[];
  /** basicConstraints cA=true, or keyUsage keyCertSign/cRLSign. */
  readonly requestsCa: boolean;
}

function refuse(code: RefusalCode, message: string, cause?: unknown): TrellisError {
  return new TrellisError(code, message, cause === undefined ? undefined : { cause });
}

/** Parses, checks the key and verifies the signature. Throws `TrellisError` with a `RefusalCode`. */
export function parseCsr(pem: string): ParsedCsr {
  if (typeof pem !== 'string' || pem.length === 0) throw refuse('TRELLIS_ERR_CSR_MALFORMED', 'csr is empty');
  const size = Buffer.byteLength(pem, 'utf8');
  if (size > MAX_CSR_BYTES) {
    throw refuse('TRELLIS_ERR_CSR_TOO_LARGE', `csr is ${size} bytes; the limit is ${MAX_CSR_BYTES}`);
  }
  let blocks: Array<{ label: string; der: Buffer }>;
  try {
    blocks = pemBlocks(pem);
  } catch (cause) {
    throw refuse('TRELLIS_ERR_CSR_MALFORMED', `csr is not valid PEM: ${(cause as Error).message}`, cause);
  }
  const requests = blocks.filter((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
  if (requests.length !== 1 || blocks.length !== 1) {
    throw refuse('TRELLIS_ERR_CSR_MALFORMED',
      `csr must be exactly one PEM block "CERTIFICATE REQUEST"; found ${blocks.length === 0 ? 'none' : blocks.map((b) => b.label).join(', ')}`);
  }
  try {
    return check(requests[0].der);
  } catch (err) {
    if (err instanceof DerError) throw refuse('TRELLIS_ERR_CSR_MALFORMED', `csr is not a valid PKCS#10 request: ${err.message}`, err);
    throw err;
  }
}

function check(der: Buffer): ParsedCsr {
  const outer = expectTag(parseOne(der), TAG.SEQUENCE, 'CertificationRequest');
  const [info, sigAlg, sigBits, ...extra] = children(outer);
  if (extra.length > 0) throw new DerError('CertificationRequest has extra fields');
  expectTag(info, TAG.SEQUENCE, 'certificationRequestInfo');
  expectTag(sigAlg, TAG.SEQUENCE, 'signatureAlgorithm');
  const [version, subject, spkiTlv, attributes, ...more] = children(info);
  expectTag(version, TAG.INTEGER, 'version');
  if (version.content.length !== 1 || version.content[0] !== 0) throw new DerError('version must be 0 (v1)');
  expectTag(subject, TAG.SEQUENCE, 'subject');
  expectTag(spkiTlv, TAG.SEQUENCE, 'subjectPKInfo');
  if (attributes !== undefined && attributes.tag !== 0xa0) throw new DerError('attributes must be [0]');
  if (more.length > 0) throw new DerError('certificationRequestInfo has extra fields');

  // Key: node:crypto decides what the SPKI is; we decide what we accept.
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spkiTlv.raw, format: 'der', type: 'spki' });
  } catch (cause) {
    throw refuse('TRELLIS_ERR_CSR_UNSUPPORTED_KEY', 'csr public key is of an unknown type or malformed; use RSA (2048+ bits) or ECDSA P-256', cause);
  }
  let keyDescription: string;
  const keyType = publicKey.asymmetricKeyType;
  if (keyType === 'rsa') {
    const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw refuse('TRELLIS_ERR_CSR_WEAK_KEY', `csr has an RSA key of ${bits} bits; at least ${MIN_RSA_BITS} are required`);
    if (bits > MAX_RSA_BITS) throw refuse('TRELLIS_ERR_CSR_UNSUPPORTED_KEY', `csr has an RSA key of ${bits} bits; at most ${MAX_RSA_BITS} are accepted`);
    keyDescription = `RSA ${bits}`;
  } else if (keyType === 'ec') {
    const curve = publicKey.asymmetricKeyDetails?.namedCurve ?? 'unknown';
    const name = ACCEPTED_CURVES[curve];
    if (!name) throw refuse('TRELLIS_ERR_CSR_UNSUPPORTED_KEY', `csr has an EC key on curve ${curve}; only P-256 and P-384 are accepted`);
    keyDescription = `EC ${name}`;
  } else {
    throw refuse('TRELLIS_ERR_CSR_UNSUPPORTED_KEY', `csr has a key of type ${keyType ?? 'unknown'}; use RSA (2048+ bits) or ECDSA P-256`);
  }

  // Signature over the certificationRequestInfo bytes exactly as received.
  const [algOid, algParams, ...algMore] = children(sigAlg);
  const algId = decodeOid(expectTag(algOid, TAG.OID, 'signature algorithm').content);
  const alg = SIGNATURE_ALGORITHMS[algId];
  if (!alg) {
    const weak = WEAK_SIGNATURE_NAMES[algId];
    throw refuse('TRELLIS_ERR_CSR_SIGNATURE_ALGORITHM', weak
      ? `csr is signed with ${weak}; sign it with SHA-256 (node-forge: csr.sign(key, forge.md.sha256.create()))`
      : `csr signature algorithm ${algId} is not accepted; use sha256WithRSAEncryption or ecdsa-with-SHA256`);
  }
  if (alg.keyType !== keyType) throw refuse('TRELLIS_ERR_CSR_SIGNATURE_ALGORITHM', `csr signature algorithm ${alg.name} does not fit its ${keyType} key`);
  if (algMore.length > 0 || (algParams !== undefined && !(alg.keyType === 'rsa' && algParams.tag === TAG.NULL && algParams.content.length === 0))) {
    throw new DerError('unexpected signature algorithm parameters');
  }
  const sig = readBitString(expectTag(sigBits, TAG.BIT_STRING, 'signature'));
  if (sig.unused !== 0) throw new DerError('signature has unused bits');
  let ok = false;
  try {
    ok = verify(alg.hash, info.raw, publicKey, sig.bytes);
  } catch {
    ok = false;
  }
  if (!ok) throw refuse('TRELLIS_ERR_CSR_BAD_SIGNATURE', 'csr signature does not verify with its own public key');

  // Extensions the caller asked for.
  const requestedNames: RequestedName[] = [];
  let requestsCa = false;
  for (const attr of attributes ? children(attributes) : []) {
    const [attrOid, values] = children(expectTag(attr, TAG.SEQUENCE, 'attribute'));
    const attrId = decodeOid(expectTag(attrOid, TAG.OID, 'attribute type').content);
    expectTag(values, TAG.SET, 'attribute values');
    if (attrId !== OID.extensionRequest) continue;
    for (const exts of children(values)) {
      for (const ext of children(expectTag(exts, TAG.SEQUENCE, 'extensions'))) {
        const parts = children(expectTag(ext, TAG.SEQUENCE, 'extension'));
        const extId = decodeOid(expectTag(parts[0], TAG.OID, 'extension id').content);
        let valueTlv = parts[1];
        if (valueTlv?.tag === TAG.BOOLEAN) {
          readBoolean(valueTlv);
          valueTlv = parts[2];
        }
        const value = parseOne(expectTag(valueTlv, TAG.OCTET_STRING, 'extension value').content);
        if (extId === OID.subjectAltName) requestedNames.push(...readGeneralNames(value));
        else if (extId === OID.basicConstraints) {
          const bc = children(expectTag(value, TAG.SEQUENCE, 'basicConstraints'));
          if (bc[0]?.tag === TAG.BOOLEAN && readBoolean(bc[0])) requestsCa = true;
        } else if (extId === OID.keyUsage) {
          const { bytes } = readBitString(value);
          // keyCertSign is bit 5, cRLSign bit 6 (RFC 5280 §4.2.1.3).
          if (bytes.length > 0 && (bytes[0] & 0x06) !== 0) requestsCa = true;
        }
      }
    }
  }

  return Object.freeze({
    spki: Buffer.from(spkiTlv.raw),
    publicKey,
    keyDescription,
    requestedNames: Object.freeze(requestedNames),
    requestsCa,
  });
}

function readGeneralNames(seq: Tlv): RequestedName[] {
  const out: RequestedName[] = [];
  for (const name of children(expectTag(seq, TAG.SEQUENCE, 'subjectAltName'))) {
    switch (name.tag) {
      case 0x86:
        out.push({ type: 'URI', value: name.content.toString('latin1') });
        break;
      case 0x82:
        out.push({ type: 'DNS', value: name.content.toString('latin1') });
        break;
      case 0x81:
        out.push({ type: 'email', value: name.content.toString('latin1') });
        break;
      case 0x87:
        out.push({ type: 'IP', value: formatIp(name.content) });
        break;
      default:
        out.push({ type: 'other', value: `[tag 0x${name.tag.toString(16)}]` });
    }
  }
  return out;
}

function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
    return groups.join(':');
  }
  return `[${bytes.length}-byte address]`;
}
