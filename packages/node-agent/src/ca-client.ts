/**
 * Client of the control plane's CSR service (`istio.v1.auth.IstioCertificateService/CreateCertificate`) over TLS.
 *
 * The server is verified against the bundle's roots, with the host part of `HOST:PORT` as the name checked (DNS
 * name or IP SAN). The first call authenticates with `authorization: Bearer <join token>`; renewals present the
 * current certificate as the TLS client certificate and send no token.
 */
import * as grpc from '@grpc/grpc-js';
import { grpcService, TrellisError } from '@trellis/api';

export type CaCredential =
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'certificate'; readonly keyPem: string; readonly chainPem: readonly string[] };

export interface CertificateRequest {
  readonly csrPem: string;
  /** Requested lifetime in seconds; 0 lets the CA choose. */
  readonly validitySeconds: number;
  readonly credential: CaCredential;
  /** Cancels the call (status CANCELLED) when aborted, so shutdown does not wait for the deadline. */
  readonly signal?: AbortSignal;
}

/** A refusal by the CA (the request was understood and denied) as opposed to the CA being unreachable. */
export function isRefusal(error: unknown): boolean {
  const code = (error as { grpcCode?: number }).grpcCode;
  return code === grpc.status.UNAUTHENTICATED || code === grpc.status.PERMISSION_DENIED || code === grpc.status.INVALID_ARGUMENT;
}

export interface CaClientOptions {
  /** `HOST:PORT` of the control plane's TLS gRPC port. */
  readonly address: string;
  readonly rootCertsPem: string;
  /** Per-call deadline in milliseconds (default 10 s). */
  readonly timeoutMs?: number;
}

/**
 * Sends one CSR and returns the chain (leaf first). Errors are TrellisError TRELLIS_ERR_CA with `grpcCode` set to
 * the gRPC status, so callers can tell refusals (`isRefusal`) from outages.
 */
export async function requestCertificate(options: CaClientOptions, request: CertificateRequest): Promise<string[]> {
  const Service = grpcService('istio.v1.auth.IstioCertificateService');
  const roots = Buffer.from(options.rootCertsPem);
  const creds = request.credential.kind === 'certificate'
    ? grpc.credentials.createSsl(roots, Buffer.from(request.credential.keyPem), Buffer.from(request.credential.chainPem.join('')))
    : grpc.credentials.createSsl(roots);
  const client = new Service(options.address, creds, { 'grpc.max_reconnect_backoff_ms': 2000 });
  const metadata = new grpc.Metadata();
  if (request.credential.kind === 'token') metadata.set('authorization', `Bearer ${request.credential.token}`);
  try {
    const response = await new Promise<{ cert_chain?: string[] }>((resolve, reject) => {
      if (request.signal?.aborted) return reject(Object.assign(new Error('aborted'), { code: grpc.status.CANCELLED, details: 'aborted' }));
      const call = client.CreateCertificate(
        { csr: request.csrPem, validity_duration: String(request.validitySeconds) },
        metadata,
        { deadline: Date.now() + (options.timeoutMs ?? 10_000) },
        (error: grpc.ServiceError | null, value: { cert_chain?: string[] }) => {
          request.signal?.removeEventListener('abort', cancel);
          if (error) reject(error);
          else resolve(value);
        },
      ) as grpc.ClientUnaryCall;
      const cancel = (): void => call.cancel();
      request.signal?.addEventListener('abort', cancel, { once: true });
    });
    const chain = response.cert_chain ?? [];
    if (chain.length === 0) throw Object.assign(new TrellisError('TRELLIS_ERR_CA', 'CA returned an empty certificate chain'), { grpcCode: grpc.status.INTERNAL });
    return chain;
  } catch (e) {
    if (e instanceof TrellisError) throw e;
    const err = e as grpc.ServiceError;
    const name = grpc.status[err.code] ?? String(err.code);
    throw Object.assign(
      new TrellisError('TRELLIS_ERR_CA', `CA ${options.address} ${name}: ${err.details || err.message}`, { cause: e }),
      { grpcCode: err.code },
    );
  } finally {
    client.close();
  }
}
