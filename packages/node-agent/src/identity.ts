/**
 * Workload key material: key generation (node:crypto), CSR (node-forge), parsing of issued chains, and the
 * persisted copy in the state directory.
 *
 * A new key is generated for every CSR (first issue and each renewal), so a key never outlives two certificates.
 */
import { constants, createPrivateKey, createPublicKey, generateKeyPair, privateEncrypt, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { TrellisError } from '@trellis/api';

/** A certificate chain and the key of its leaf, as served over SDS. Frozen. */
export interface Identity {
  readonly keyPem: string;
  /** PEM certificates, leaf first and the root last, as the CA returned them. */
  readonly chainPem: readonly string[];
  readonly spiffeId: string;
  /** Validity of the leaf, epoch milliseconds. */
  readonly notBefore: number;
  readonly notAfter: number;
  /**
   * When this host obtained the certificate (epoch ms): the start of its useful life. CAs backdate notBefore
   * against clock skew (often by minutes), so rotation is timed from here, not from notBefore.
   */
  readonly obtainedAt: number;
  readonly serialNumber: string;
}

export const KEY_FILE = 'key.pem';
export const CHAIN_FILE = 'cert-chain.pem';

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * RSA 2048 private key, PKCS#8 PEM. Generated on libuv's thread pool (it takes 0.1–0.5 s of CPU), so SDS keeps
 * serving while a renewal prepares its key.
 */
export async function generateKey(): Promise<string> {
  const { privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: 2048,
    publicExponent: 0x10001,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return privateKey;
}

/** DER prefix of a PKCS#1 v1.5 DigestInfo for SHA-256 (RFC 8017 §9.2, note 1). */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * A PEM CSR carrying `spiffeId` as its only SAN (the CA decides the identity anyway; this states the expectation).
 * node-forge builds the request; the RSA signature is made by node:crypto (OpenSSL), ~100× faster than forge's
 * JavaScript RSA.
 */
export function buildCsr(keyPem: string, spiffeId: string): string {
  const spkiPem = createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString();
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(spkiPem);
  csr.setSubject([]);
  csr.setAttributes([
    { name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] }] },
  ]);
  const signer = {
    sign(md: forge.md.MessageDigest): string {
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      const signature = privateEncrypt({ key: keyPem, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]));
      return signature.toString('binary');
    },
  };
  csr.sign(signer as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/** Splits concatenated PEM text into one string per certificate. */
export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((p) => `${p}\n`) ?? [];
}

/**
 * Builds an Identity from a key and the CA's chain (entries may themselves hold several PEMs). Throws
 * TRELLIS_ERR_IDENTITY when the chain is empty, unparsable, has no SPIFFE URI SAN, or the leaf's public key is not
 * the key's.
 */
export function toIdentity(keyPem: string, chain: readonly string[], obtainedAt: number = Date.now()): Identity {
  const pems = chain.flatMap(splitPem);
  if (pems.length === 0) throw new TrellisError('TRELLIS_ERR_IDENTITY', 'certificate chain is empty');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pems[0]!);
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_IDENTITY', `leaf certificate does not parse: ${(cause as Error).message}`, { cause });
  }
  const leafKey = leaf.publicKey.export({ type: 'spki', format: 'der' });
  const ownKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  if (!leafKey.equals(ownKey)) throw new TrellisError('TRELLIS_ERR_IDENTITY', 'leaf certificate does not match the private key');
  const uris = (leaf.subjectAltName ?? '').split(/,\s*/).filter((s) => s.startsWith('URI:spiffe://')).map((s) => s.slice(4));
  if (uris.length !== 1) throw new TrellisError('TRELLIS_ERR_IDENTITY', `leaf certificate carries ${uris.length} SPIFFE URI SANs, expected 1`);
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  return Object.freeze({
    keyPem,
    chainPem: Object.freeze(pems),
    spiffeId: uris[0]!,
    notBefore,
    notAfter,
    obtainedAt: Math.min(notAfter, Math.max(notBefore, obtainedAt)),
    serialNumber: leaf.serialNumber,
  });
}

/** Creates the state directory (0700) if needed and tightens its mode. */
export function ensureStateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

function writePrivate(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Persists key and chain (0600). The chain is written last; `loadIdentity` checks that the pair matches. */
export function saveIdentity(dir: string, identity: Identity): void {
  ensureStateDir(dir);
  writePrivate(join(dir, KEY_FILE), identity.keyPem);
  writePrivate(join(dir, CHAIN_FILE), identity.chainPem.join(''));
}

/** The persisted identity, or null when none is there or it is unusable (missing, mismatched, unparsable). */
export function loadIdentity(dir: string): { identity: Identity | null; problem?: string } {
  let keyPem: string;
  let chainText: string;
  let writtenAt: number;
  try {
    keyPem = readFileSync(join(dir, KEY_FILE), 'utf8');
    chainText = readFileSync(join(dir, CHAIN_FILE), 'utf8');
    writtenAt = statSync(join(dir, CHAIN_FILE)).mtimeMs;
  } catch {
    return { identity: null, problem: 'no persisted certificate' };
  }
  try {
    return { identity: toIdentity(keyPem, [chainText], writtenAt) };
  } catch (e) {
    return { identity: null, problem: `persisted certificate unusable: ${(e as Error).message}` };
  }
}
