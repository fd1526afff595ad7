/**
 * `istio.v1.auth.IstioCertificateService/CreateCertificate` on a grpc-js server the caller owns (the control
 * plane's shared xDS + CA port).
 *
 * The identity comes from the authenticated caller (join token, current certificate over mTLS, or an extra
 * authenticator), never from the CSR. The response is Istio's: `cert_chain` with the leaf first and the root last.
 * Trellis extras (ignored by Istio clients): initial metadata `trellis-trust-bundle-bin` carries the whole trust
 * bundle (PEM, every root, for staged root rotation), and a refusal's trailers carry `trellis-error-code`.
 * Every issuance and refusal is logged (one structured line) and counted.
 */
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import { grpcService, TrellisError } from '@trellis/api';
import type { CertificateAuthority } from './authority.js';
import {
  joinTokenAuthenticator, peerCertificateAuthenticator, bearerToken, type AuthenticatedCall, type Authenticator, type Identity,
} from './authenticators.js';
import type { JoinTokens } from './join-tokens.js';
import { caMetrics, type CaMetrics } from './metrics.js';
import { refusalFor } from './refusals.js';

/** Structured logger: one line per event, `message` fixed, `fields` variable. */
export interface CaLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface CertificateServiceDeps {
  readonly ca: CertificateAuthority;
  readonly tokens: JoinTokens;
  /** Tried after the join-token and mTLS authenticators. */
  readonly authenticators?: readonly Authenticator[];
  readonly logger: CaLogger;
  /** Where the counters and histogram register; a private registry when unset. */
  readonly metrics?: Registry;
  /** For certificate validity checks of mTLS callers; `Date.now` by default. */
  readonly clock?: () => number;
}

interface CertificateRequest {
  csr?: string;
  validity_duration?: string | number;
  metadata?: unknown;
}

interface CertificateResponse {
  cert_chain: string[];
}

export const CERTIFICATE_SERVICE = 'istio.v1.auth.IstioCertificateService';
export const TRUST_BUNDLE_METADATA = 'trellis-trust-bundle-bin';
export const ERROR_CODE_METADATA = 'trellis-error-code';

/** The handler on its own, for servers built elsewhere and for tests. */
export function createCertificateHandler(deps: CertificateServiceDeps): grpc.handleUnaryCall<CertificateRequest, CertificateResponse> & { readonly metrics: CaMetrics } {
  const clock = deps.clock ?? Date.now;
  const authenticators: readonly Authenticator[] = [
    joinTokenAuthenticator(deps.tokens),
    peerCertificateAuthenticator(deps.ca, clock),
    ...(deps.authenticators ?? []),
  ];
  const metrics = caMetrics(deps.metrics);

  const refuse = (
    call: grpc.ServerUnaryCall<CertificateRequest, CertificateResponse>,
    callback: grpc.sendUnaryData<CertificateResponse>,
    err: unknown,
    identity: Identity | undefined,
  ): void => {
    const code = err instanceof TrellisError ? err.code : 'TRELLIS_ERR_INTERNAL';
    const refusal = refusalFor(code);
    const message = err instanceof Error ? err.message : String(err);
    const reason = refusal?.reason ?? 'internal';
    metrics.refused.inc({ reason });
    const fields: Record<string, unknown> = { event: 'ca.refused', reason, code, error: message, peer: call.getPeer() };
    if (identity) Object.assign(fields, { via: identity.via, namespace: identity.namespace, serviceAccount: identity.serviceAccount, ...identity.detail });
    deps.logger.warn('certificate request refused', fields);
    const trailer = new grpc.Metadata();
    trailer.set(ERROR_CODE_METADATA, code);
    callback({ code: refusal?.grpcStatus ?? grpc.status.INTERNAL, details: refusal ? message : `internal error: ${message}`, metadata: trailer });
  };

  const handler = async (
    call: grpc.ServerUnaryCall<CertificateRequest, CertificateResponse>,
    callback: grpc.sendUnaryData<CertificateResponse>,
  ): Promise<void> => {
    let identity: Identity | undefined;
    try {
      identity = await authenticate(call, authenticators);
    } catch (err) {
      refuse(call, callback, err, undefined);
      return;
    }
    try {
      const ttl = parseTtl(call.request.validity_duration);
      const started = process.hrtime.bigint();
      const issued = deps.ca.sign(call.request.csr ?? '', identity, ttl);
      metrics.signing.observe(Number(process.hrtime.bigint() - started) / 1e9);
      await identity.commit?.();
      metrics.issued.inc({ via: identity.via });
      deps.logger.info('certificate issued', {
        event: 'ca.issued', spiffeId: issued.spiffeId, serial: issued.serial, notAfter: issued.notAfter.toISOString(),
        via: identity.via, ...identity.detail, peer: call.getPeer(),
      });
      const md = new grpc.Metadata();
      md.set(TRUST_BUNDLE_METADATA, Buffer.from(deps.ca.trustBundlePem(), 'utf8'));
      call.sendMetadata(md);
      callback(null, { cert_chain: [...issued.certChain] });
    } catch (err) {
      refuse(call, callback, err, identity);
    }
  };
  const unary = ((call, callback) => void handler(call, callback)) as grpc.handleUnaryCall<CertificateRequest, CertificateResponse>;
  return Object.assign(unary, { metrics });
}

/** Adds the CSR service to `server` (which the caller binds and starts). */
export function addCertificateService(server: grpc.Server, deps: CertificateServiceDeps): void {
  const service = grpcService(CERTIFICATE_SERVICE).service;
  server.addService(service, { CreateCertificate: createCertificateHandler(deps) });
}

async function authenticate(call: AuthenticatedCall, authenticators: readonly Authenticator[]): Promise<Identity> {
  for (const a of authenticators) {
    let id: Identity | null;
    try {
      id = await a.authenticate(call);
    } catch (err) {
      if (err instanceof TrellisError) throw err;
      throw new TrellisError('TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED', `${a.name}: ${(err as Error).message}`, { cause: err });
    }
    if (id) return id;
  }
  const hasBearer = bearerToken(call) !== undefined;
  throw new TrellisError('TRELLIS_ERR_CA_UNAUTHENTICATED', hasBearer
    ? 'the bearer token is not a Trellis join token and no authenticator accepted it'
    : 'no credentials: send "authorization: Bearer <join token>" or connect with a certificate issued by this mesh CA');
}

function parseTtl(v: string | number | undefined): number | undefined {
  if (v === undefined || v === '' || v === '0' || v === 0) return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isSafeInteger(n)) throw new TrellisError('TRELLIS_ERR_CA_BAD_TTL', `validity_duration ${String(v)} is not a whole number of seconds`);
  if (n < 0) throw new TrellisError('TRELLIS_ERR_CA_BAD_TTL', `validity_duration ${n} is negative`);
  return n;
}
