/**
 * One `tls.SecureContext` per secret version (DESIGN.md §7: building contexts per connection costs ~25 % of
 * throughput). A context is rebuilt only when the SDS secret object it was made from is replaced, so a rotation
 * applies to new connections while open ones keep the context they handshook with.
 */
import tls from 'node:tls';
import type { SecretConfig, TlsContext } from '@trellis/api';
import type { ConfigStore } from '../config/store.js';

interface Entry {
  readonly cert: SecretConfig | undefined;
  readonly ca: SecretConfig | undefined;
  readonly ctx: tls.SecureContext;
  readonly version: number;
}

export class TlsContexts {
  private readonly cache = new Map<string, Entry>();
  private versions = 0;

  constructor(private readonly store: ConfigStore) {}

  /**
   * The context for a TLS config, or null while its secrets have not arrived. `version` changes whenever the
   * context is rebuilt (upstream pools key on it).
   */
  get(t: TlsContext): { ctx: tls.SecureContext; version: number } | null {
    const certName = t.certificateSds[0] ?? null;
    const key = `${certName ?? ''}|${t.validationSds ?? ''}`;
    const secrets = this.store.secrets();
    const cert = certName ? secrets.get(certName) : undefined;
    const ca = t.validationSds ? secrets.get(t.validationSds) : undefined;
    if ((certName && cert?.kind !== 'tls_certificate') || (t.validationSds && ca?.kind !== 'validation_context')) return null;
    const hit = this.cache.get(key);
    if (hit && hit.cert === cert && hit.ca === ca) return hit;
    const ctx = tls.createSecureContext({
      cert: cert?.kind === 'tls_certificate' ? cert.certificateChain : undefined,
      key: cert?.kind === 'tls_certificate' ? cert.privateKey : undefined,
      ca: ca?.kind === 'validation_context' ? ca.trustedCa : undefined,
      minVersion: 'TLSv1.2',
    });
    const entry = { cert, ca, ctx, version: ++this.versions };
    this.cache.set(key, entry);
    return entry;
  }
}
