/** The mesh CA: signing material, join tokens, the Istio-compatible CSR service, serving TLS, token admin routes. */
export {
  CertificateAuthority, CLOCK_SKEW_SECONDS, DEFAULT_MAX_TTL_SECONDS, DEFAULT_WORKLOAD_TTL_SECONDS,
  type CertificateAuthorityOptions, type IssuedCert, type WorkloadIdentityRef,
} from './authority.js';
export {
  JoinTokens, JOIN_TOKEN_PREFIX, DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS, type TokenBinding, type TokenInfo,
} from './join-tokens.js';
export {
  joinTokenAuthenticator, peerCertificateAuthenticator, bearerToken,
  type Authenticator, type AuthenticatedCall, type Identity,
} from './authenticators.js';
export {
  addCertificateService, createCertificateHandler, CERTIFICATE_SERVICE, TRUST_BUNDLE_METADATA, ERROR_CODE_METADATA,
  type CaLogger, type CertificateServiceDeps,
} from './certificate-service.js';
export { serverCredentials, type ServerTlsOptions, type ServingCertInfo } from './server-tls.js';
export { tokenRoutes, type CaHttpRoute, type TokenRouteDeps } from './token-routes.js';
export { REFUSALS, refusalFor, type Refusal, type RefusalCode } from './refusals.js';
export { parseCsr, MAX_CSR_BYTES, MIN_RSA_BITS, MAX_RSA_BITS, type ParsedCsr, type RequestedName } from './csr.js';
export { caMetrics, type CaMetrics } from './metrics.js';
