/**
 * One `tls.SecureContext` per secret version (DESIGN.md §7: building contexts per connection costs ~25 % of
 * throughput). A context is rebuilt only when the SDS secret object it was made from is replaced, so a rotation
 * applies to new connections while open ones keep the context they handshook with.
 */
import tls from 'node:tls';
import type { SecretConfig, TlsContext } from '@trellis/api';
import type { ConfigStore } from '../config/store.js';

interface Entry {
  readonly certs: readonly (SecretConfig | undefined)[];
  readonly ca: SecretConfig | undefined;
  readonly ctx: tls.SecureContext;
  readonly version: number;
}

type CertSecret = Extract<SecretConfig, { kind: 'tls_certificate' }>;

export class TlsContexts {
  private readonly cache = new Map<string, Entry>();
  private versions = 0;

  constructor(private readonly store: ConfigStore) {}

  /**
   * The context for a TLS config, or null while its secrets have not arrived. `version` changes whenever the
   * context is rebuilt (upstream pools key on it). Several certificates (a gateway server's `credentialNames`,
   * e.g. RSA and ECDSA) go into one context; OpenSSL picks the one the client's signature algorithms allow.
   */
  get(t: TlsContext): { ctx: tls.SecureContext; version: number } | null {
    const params = t.tlsParams;
    // Envoy's BoringSSL spelling of equal-preference groups (`[A|B]`) is a plain list for OpenSSL.
    const ciphers = params && params.cipherSuites.length > 0 ? params.cipherSuites.join(':').replace(/[[\]]/g, '').replace(/\|/g, ':') : undefined;
    const key = `${t.certificateSds.join(',')}|${t.validationSds ?? ''}|${params?.minVersion ?? ''}|${params?.maxVersion ?? ''}|${ciphers ?? ''}`;
    const secrets = this.store.secrets();
    const certs = t.certificateSds.map((n) => secrets.get(n));
    const ca = t.validationSds ? secrets.get(t.validationSds) : undefined;
    if (certs.some((c) => c?.kind !== 'tls_certificate') || (t.validationSds && ca?.kind !== 'validation_context')) return null;
    const hit = this.cache.get(key);
    if (hit && hit.ca === ca && hit.certs.length === certs.length && hit.certs.every((c, i) => c === certs[i])) return hit;
    const pairs = certs as CertSecret[];
    let ctx: tls.SecureContext;
    try {
      ctx = tls.createSecureContext({
        cert: pairs.length === 0 ? undefined : pairs.length === 1 ? pairs[0]!.certificateChain : pairs.map((c) => c.certificateChain),
        key: pairs.length === 0 ? undefined : pairs.length === 1 ? pairs[0]!.privateKey : pairs.map((c) => c.privateKey),
        ca: ca?.kind === 'validation_context' ? ca.trustedCa : undefined,
        minVersion: params?.minVersion ?? 'TLSv1.2',
        ...(params?.maxVersion ? { maxVersion: params.maxVersion } : {}),
        ...(ciphers !== undefined ? { ciphers } : {}),
      });
    } catch {
      // unusable settings (no cipher OpenSSL knows, min above max): no context, so the connection is refused
      return null;
    }
    const entry = { certs, ca, ctx, version: ++this.versions };
    this.cache.set(key, entry);
    return entry;
  }
}
