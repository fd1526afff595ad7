/**
 * Every way the CA refuses a certificate request: the stable `TrellisError` code, the gRPC status it maps to, and
 * the `reason` label of `trellis_ca_requests_refused_total`. One table, so the service, the metrics and the docs
 * (docs/ca.md "Refusals") agree.
 */
import { status } from '@grpc/grpc-js';

export type RefusalCode =
  | 'TRELLIS_ERR_CSR_TOO_LARGE'
  | 'TRELLIS_ERR_CSR_MALFORMED'
  | 'TRELLIS_ERR_CSR_BAD_SIGNATURE'
  | 'TRELLIS_ERR_CSR_SIGNATURE_ALGORITHM'
  | 'TRELLIS_ERR_CSR_WEAK_KEY'
  | 'TRELLIS_ERR_CSR_UNSUPPORTED_KEY'
  | 'TRELLIS_ERR_CSR_IDENTITY_MISMATCH'
  | 'TRELLIS_ERR_CSR_CA_REQUESTED'
  | 'TRELLIS_ERR_CA_TTL_TOO_LONG'
  | 'TRELLIS_ERR_CA_BAD_TTL'
  | 'TRELLIS_ERR_CA_BAD_IDENTITY'
  | 'TRELLIS_ERR_TOKEN_UNKNOWN'
  | 'TRELLIS_ERR_TOKEN_USED'
  | 'TRELLIS_ERR_TOKEN_EXPIRED'
  | 'TRELLIS_ERR_TOKEN_REVOKED'
  | 'TRELLIS_ERR_CA_UNAUTHENTICATED'
  | 'TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED';

export interface Refusal {
  readonly grpcStatus: status;
  readonly reason: string;
}

export const REFUSALS: Readonly<Record<RefusalCode, Refusal>> = Object.freeze({
  TRELLIS_ERR_CSR_TOO_LARGE: { grpcStatus: status.INVALID_ARGUMENT, reason: 'csr_too_large' },
  TRELLIS_ERR_CSR_MALFORMED: { grpcStatus: status.INVALID_ARGUMENT, reason: 'csr_malformed' },
  TRELLIS_ERR_CSR_BAD_SIGNATURE: { grpcStatus: status.INVALID_ARGUMENT, reason: 'bad_signature' },
  TRELLIS_ERR_CSR_SIGNATURE_ALGORITHM: { grpcStatus: status.INVALID_ARGUMENT, reason: 'signature_algorithm' },
  TRELLIS_ERR_CSR_WEAK_KEY: { grpcStatus: status.INVALID_ARGUMENT, reason: 'weak_key' },
  TRELLIS_ERR_CSR_UNSUPPORTED_KEY: { grpcStatus: status.INVALID_ARGUMENT, reason: 'unsupported_key' },
  TRELLIS_ERR_CSR_IDENTITY_MISMATCH: { grpcStatus: status.PERMISSION_DENIED, reason: 'identity_mismatch' },
  TRELLIS_ERR_CSR_CA_REQUESTED: { grpcStatus: status.PERMISSION_DENIED, reason: 'ca_requested' },
  TRELLIS_ERR_CA_TTL_TOO_LONG: { grpcStatus: status.INVALID_ARGUMENT, reason: 'ttl_too_long' },
  TRELLIS_ERR_CA_BAD_TTL: { grpcStatus: status.INVALID_ARGUMENT, reason: 'bad_ttl' },
  TRELLIS_ERR_CA_BAD_IDENTITY: { grpcStatus: status.PERMISSION_DENIED, reason: 'bad_identity' },
  TRELLIS_ERR_TOKEN_UNKNOWN: { grpcStatus: status.UNAUTHENTICATED, reason: 'token_unknown' },
  TRELLIS_ERR_TOKEN_USED: { grpcStatus: status.UNAUTHENTICATED, reason: 'token_used' },
  TRELLIS_ERR_TOKEN_EXPIRED: { grpcStatus: status.UNAUTHENTICATED, reason: 'token_expired' },
  TRELLIS_ERR_TOKEN_REVOKED: { grpcStatus: status.UNAUTHENTICATED, reason: 'token_revoked' },
  TRELLIS_ERR_CA_UNAUTHENTICATED: { grpcStatus: status.UNAUTHENTICATED, reason: 'unauthenticated' },
  TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED: { grpcStatus: status.UNAUTHENTICATED, reason: 'authenticator_refused' },
});

export function refusalFor(code: string): Refusal | undefined {
  return (REFUSALS as Record<string, Refusal>)[code];
}
