/**
 * Test support for the CA tests: CSRs built byte by byte (so tests can make hostile ones: foreign SANs, CA:true,
 * small or odd keys, tampered signatures), a key pool (RSA keygen is slow), temp dirs, and an openssl runner.
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bitString, bool, ctx, int, nullValue, octets, oid, seq, set, toPem, utf8 } from '../src/ca/der.js';
import { ipBytes } from '../src/ca/x509-builder.js';

export type San = { type: 'URI' | 'DNS' | 'IP' | 'email'; value: string };

export interface CsrSpec {
  readonly key: KeyObject;
  readonly sans?: readonly San[];
  readonly ca?: boolean;
  readonly keyCertSign?: boolean;
  /** `sha1` makes a weak-hash CSR. */
  readonly hash?: 'sha256' | 'sha384' | 'sha1';
  /** Flip a bit of the signature. */
  readonly tamperSignature?: boolean;
  /** Flip a bit of the signed info after signing. */
  readonly tamperInfo?: boolean;
  readonly commonName?: string;
}

const SIG_OIDS: Record<string, Record<string, string>> = {
  rsa: { sha256: '1.2.840.113549.1.1.11', sha384: '1.2.840.113549.1.1.12', sha1: '1.2.840.113549.1.1.5' },
  ec: { sha256: '1.2.840.10045.4.3.2', sha384: '1.2.840.10045.4.3.3', sha1: '1.2.840.10045.4.1' },
  ed25519: { sha256: '1.3.101.112', sha384: '1.3.101.112', sha1: '1.3.101.112' },
};

export function buildCsr(spec: CsrSpec): string {
  const pub = createPublicKey(spec.key);
  const spki = pub.export({ format: 'der', type: 'spki' });
  const exts: Buffer[] = [];
  if (spec.sans && spec.sans.length > 0) {
    const names = spec.sans.map((s) =>
      s.type === 'URI' ? ctx(6, false, Buffer.from(s.value, 'latin1'))
        : s.type === 'DNS' ? ctx(2, false, Buffer.from(s.value, 'latin1'))
          : s.type === 'email' ? ctx(1, false, Buffer.from(s.value, 'latin1'))
            : ctx(7, false, ipBytes(s.value)));
    exts.push(seq(oid('2.5.29.17'), octets(seq(...names))));
  }
  if (spec.ca) exts.push(seq(oid('2.5.29.19'), bool(true), octets(seq(bool(true)))));
  if (spec.keyCertSign) exts.push(seq(oid('2.5.29.15'), bool(true), octets(Buffer.from([0x03, 0x02, 0x02, 0x04]))));
  const attrs = exts.length > 0 ? [seq(oid('1.2.840.113549.1.9.14'), set(seq(...exts)))] : [];
  const commonName = spec.commonName ?? (spec.tamperInfo ? 'tamper-me' : undefined);
  const subject = commonName ? seq(set(seq(oid('2.5.4.3'), utf8(commonName)))) : seq();
  const info = seq(int(0), subject, spki, ctx(0, true, ...attrs));
  const type = pub.asymmetricKeyType ?? 'rsa';
  const hash = spec.hash ?? 'sha256';
  const algOid = SIG_OIDS[type]?.[hash] ?? SIG_OIDS.rsa.sha256;
  const alg = type === 'rsa' ? seq(oid(algOid), nullValue()) : seq(oid(algOid));
  const signature = sign(type === 'ed25519' ? null : hash, info, spec.key);
  if (spec.tamperSignature) signature[signature.length >> 1] ^= 0x01;
  const signedInfo = Buffer.from(info);
  if (spec.tamperInfo) {
    // Flip a bit inside the subject's common name: still well-formed DER, no longer what was signed.
    const at = signedInfo.indexOf(Buffer.from(commonName ?? '', 'utf8'));
    signedInfo[at] ^= 0x01;
  }
  return toPem('CERTIFICATE REQUEST', seq(signedInfo, alg, bitString(signature)));
}

/** A few keys of each kind, generated once per process. */
export interface KeyPool {
  readonly rsa2048: readonly KeyObject[];
  readonly rsa1024: KeyObject;
  readonly rsa3072: KeyObject;
  readonly p256: readonly KeyObject[];
  readonly p384: KeyObject;
  readonly secp256k1: KeyObject;
  readonly ed25519: KeyObject;
}

let pool: KeyPool | undefined;
export function keyPool(): KeyPool {
  if (pool) return pool;
  const rsa = (bits: number): KeyObject => generateKeyPairSync('rsa', { modulusLength: bits }).privateKey;
  const ec = (curve: string): KeyObject => generateKeyPairSync('ec', { namedCurve: curve }).privateKey;
  pool = Object.freeze({
    rsa2048: [rsa(2048), rsa(2048), rsa(2048)],
    rsa1024: rsa(1024),
    rsa3072: rsa(3072),
    p256: [ec('prime256v1'), ec('prime256v1')],
    p384: ec('secp384r1'),
    secp256k1: ec('secp256k1'),
    ed25519: generateKeyPairSync('ed25519').privateKey,
  });
  return pool;
}

export function tempDir(prefix = 'trellis-ca-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs the real openssl binary; returns stdout, throws with stderr on failure. */
export function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Writes `pem` into `dir/name` and returns the path. */
export function writePem(dir: string, name: string, pem: string | readonly string[]): string {
  const p = join(dir, name);
  writeFileSync(p, typeof pem === 'string' ? pem : pem.join(''));
  return p;
}

