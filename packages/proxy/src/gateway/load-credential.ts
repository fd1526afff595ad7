/**
 * Reads and checks one credential's PEM files, so that a bad file is reported by name and reason when it is
 * loaded instead of as a failed handshake later: the chain parses, the key parses and matches the leaf, the pair
 * makes a secure context, a CA bundle holds certificates.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { SecretConfig } from '@trellis/api';
import type { CredentialSource } from './credential-files.js';

export type LoadResult =
  | { readonly ok: true; readonly secret: SecretConfig; readonly notAfter: string | null }
  | { readonly ok: false; readonly file: string; readonly reason: string };

function read(file: string): string | { reason: string } {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { reason: e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message };
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function loadCredential(name: string, src: CredentialSource): LoadResult {
  if (src.kind === 'validation_context') {
    const ca = read(src.caFile);
    if (typeof ca !== 'string') return { ok: false, file: src.caFile, reason: ca.reason };
    const certs = ca.match(PEM_CERT) ?? [];
    if (certs.length === 0) return { ok: false, file: src.caFile, reason: 'no PEM certificate in the file' };
    try {
      for (const c of certs) new X509Certificate(c);
      tls.createSecureContext({ ca });
    } catch (err) {
      return { ok: false, file: src.caFile, reason: `not a valid certificate bundle: ${(err as Error).message}` };
    }
    return { ok: true, secret: Object.freeze({ name, kind: 'validation_context', trustedCa: ca }), notAfter: null };
  }
  const chain = read(src.certFile);
  if (typeof chain !== 'string') return { ok: false, file: src.certFile, reason: chain.reason };
  const key = read(src.keyFile);
  if (typeof key !== 'string') return { ok: false, file: src.keyFile, reason: key.reason };
  const first = chain.match(PEM_CERT)?.[0];
  if (first === undefined) return { ok: false, file: src.certFile, reason: 'no PEM certificate in the file' };
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(first);
  } catch (err) {
    return { ok: false, file: src.certFile, reason: `not a valid certificate: ${(err as Error).message}` };
  }
  try {
    const k = createPrivateKey(key);
    if (!leaf.checkPrivateKey(k)) return { ok: false, file: src.keyFile, reason: `the private key does not match the certificate in ${src.certFile}` };
  } catch (err) {
    return { ok: false, file: src.keyFile, reason: `not a valid private key: ${(err as Error).message}` };
  }
  try {
    tls.createSecureContext({ cert: chain, key });
  } catch (err) {
    return { ok: false, file: src.certFile, reason: `unusable certificate/key pair: ${(err as Error).message}` };
  }
  return { ok: true, secret: Object.freeze({ name, kind: 'tls_certificate', certificateChain: chain, privateKey: key }), notAfter: leaf.validTo };
}
