/**
 * Who is asking for a certificate. Each authenticator looks at the call and answers with an identity, `null`
 * ("not mine": try the next one), or throws a `TrellisError` ("mine, and refused"). The CSR service tries them in
 * order: join token, then the caller's current certificate, then any extra ones (the Kubernetes service-account
 * token authenticator plugs in here).
 */
import { X509Certificate } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { spiffeIdFromCertificate, TrellisError } from '@trellis/api';
import type { CertificateAuthority } from './authority.js';
import { JOIN_TOKEN_PREFIX, type JoinTokens } from './join-tokens.js';

export interface Identity {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Which authenticator vouched: `join-token`, `mtls`, … (a metrics label; keep it low-cardinality). */
  readonly via: string;
  /** Extra, loggable facts (token id, workload group, peer serial). Never secrets. */
  readonly detail?: Readonly<Record<string, string>>;
  /**
   * Called once the certificate has been signed, before it is returned; throwing refuses the request. The join
   * token authenticator spends the token here, so a CSR refused for its content does not burn the token.
   */
  commit?(): Promise<void>;
}

/** The call as authenticators see it: metadata, peer, and the TLS auth context. */
export type AuthenticatedCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'metadata' | 'getPeer' | 'getAuthContext'>;

export interface Authenticator {
  readonly name: string;
  authenticate(call: AuthenticatedCall): Promise<Identity | null>;
}

/** The `Bearer` token from `authorization` metadata, if any. */
export function bearerToken(call: Pick<AuthenticatedCall, 'metadata'>): string | undefined {
  for (const v of call.metadata.get('authorization')) {
    const text = typeof v === 'string' ? v : v.toString('utf8');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(text);
    if (m) return m[1];
  }
  return undefined;
}

/** Join tokens (`authorization: Bearer trellis-jt.…`): checked now, spent on commit. Other bearer tokens: not mine. */
export function joinTokenAuthenticator(tokens: JoinTokens): Authenticator {
  return Object.freeze({
    name: 'join-token',
    async authenticate(call: AuthenticatedCall): Promise<Identity | null> {
      const token = bearerToken(call);
      if (token === undefined || !token.startsWith(JOIN_TOKEN_PREFIX)) return null;
      const binding = tokens.check(token);
      return Object.freeze({
        namespace: binding.namespace,
        serviceAccount: binding.serviceAccount,
        via: 'join-token',
        detail: Object.freeze({ tokenId: binding.id, workloadGroup: binding.workloadGroup }),
        async commit(): Promise<void> {
          await tokens.redeem(token);
        },
      });
    },
  });
}

/**
 * The caller's current certificate over mTLS (renewals). The peer certificate comes from grpc-js's
 * `call.getAuthContext()` (grpc-js ≥ 1.12; it is set only when the TLS layer verified the client chain against
 * the server's `ca`, i.e. the trust bundle). The chain is checked again here against this CA — issued by the
 * signing certificate or one of the trusted roots, inside its validity by the CA's clock — so the check does not
 * depend on how the port's credentials were built. The identity is the certificate's SPIFFE id, which must be in
 * this trust domain and have Istio's `/ns/<ns>/sa/<sa>` form.
 */
export function peerCertificateAuthenticator(ca: CertificateAuthority, clock: () => number = Date.now): Authenticator {
  return Object.freeze({
    name: 'mtls',
    async authenticate(call: AuthenticatedCall): Promise<Identity | null> {
      const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
      if (!raw) return null;
      const leaf = new X509Certificate(raw);
      const now = clock();
      if (Date.parse(leaf.validTo) <= now || Date.parse(leaf.validFrom) > now) {
        throw new TrellisError('TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED', `client certificate is not valid now (valid ${leaf.validFrom} to ${leaf.validTo})`);
      }
      if (leaf.ca) throw new TrellisError('TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED', 'client certificate is a CA certificate');
      const issuers = [...ca.caChainPem(), ca.trustBundlePem()].flatMap(splitPem).map((p) => new X509Certificate(p));
      const issuer = issuers.find((c) => leaf.checkIssued(c) && leaf.verify(c.publicKey));
      if (!issuer) throw new TrellisError('TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED', 'client certificate was not issued by this mesh CA');
      let id;
      try {
        id = spiffeIdFromCertificate(raw);
      } catch (cause) {
        throw new TrellisError('TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED', `client certificate: ${(cause as Error).message}`, { cause });
      }
      if (id.trustDomain !== ca.trustDomain) {
        throw new TrellisError('TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED', `client certificate is for trust domain ${id.trustDomain}, not ${ca.trustDomain}`);
      }
      if (id.namespace === undefined || id.serviceAccount === undefined) {
        throw new TrellisError('TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED', `client certificate SPIFFE id ${id.uri} is not of the form /ns/<ns>/sa/<sa>`);
      }
      return Object.freeze({
        namespace: id.namespace,
        serviceAccount: id.serviceAccount,
        via: 'mtls',
        detail: Object.freeze({ peerSerial: leaf.serialNumber, peerSpiffeId: id.uri }),
      });
    },
  });
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}
