/**
 * SPIFFE ids (`spiffe://<trust-domain>/<path>`), with the checks of the SPIFFE-ID standard §2
 * (github.com/spiffe/spiffe standards/SPIFFE-ID.md) and Istio's path form `/ns/<namespace>/sa/<service-account>`.
 *
 * Used by the CA (what it issues), the node agent (what it was issued) and the proxy (who the peer is), so every
 * side applies the same rules. Invalid input throws `TrellisError` with code `TRELLIS_ERR_SPIFFE_ID`.
 */
import { X509Certificate } from 'node:crypto';
import { TrellisError } from './errors.js';

export interface SpiffeId {
  /** The id as written, e.g. `spiffe://cluster.local/ns/default/sa/web`. */
  readonly uri: string;
  readonly trustDomain: string;
  /** The path including its leading `/`; empty when the id names the trust domain itself. */
  readonly path: string;
  /** Set when the path has Istio's form `/ns/<ns>/sa/<sa>`. */
  readonly namespace?: string;
  readonly serviceAccount?: string;
}

export interface WorkloadIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN_BYTES = 255;
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[a-zA-Z0-9._-]+$/;

function invalid(uri: string, reason: string): TrellisError {
  const shown = uri.length > 120 ? `${uri.slice(0, 117)}...` : uri;
  return new TrellisError('TRELLIS_ERR_SPIFFE_ID', `invalid SPIFFE id ${JSON.stringify(shown)}: ${reason}`);
}

/** Checks a trust domain name on its own (lower-case letters, digits, `.`, `-`, `_`; at most 255 bytes). */
export function checkTrustDomain(trustDomain: string): void {
  if (trustDomain.length === 0) throw invalid(`spiffe://${trustDomain}`, 'trust domain is empty');
  if (Buffer.byteLength(trustDomain) > MAX_TRUST_DOMAIN_BYTES) {
    throw invalid(`spiffe://${trustDomain}`, `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  }
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    throw invalid(`spiffe://${trustDomain}`, 'trust domain may hold only lower-case letters, digits, ".", "-" and "_"');
  }
}

/** Parses and validates a SPIFFE id. Throws `TRELLIS_ERR_SPIFFE_ID` naming the first rule broken. */
export function parseSpiffeId(uri: string): SpiffeId {
  if (typeof uri !== 'string' || uri.length === 0) throw invalid(String(uri), 'empty');
  if (Buffer.byteLength(uri) > MAX_ID_BYTES) throw invalid(uri, `longer than ${MAX_ID_BYTES} bytes`);
  const schemeEnd = uri.indexOf('://');
  if (schemeEnd < 0) throw invalid(uri, 'missing "spiffe://" scheme');
  if (uri.slice(0, schemeEnd) !== 'spiffe') throw invalid(uri, 'scheme must be "spiffe" (lower case)');
  const rest = uri.slice(schemeEnd + 3);
  if (rest.includes('?')) throw invalid(uri, 'a query is not allowed');
  if (rest.includes('#')) throw invalid(uri, 'a fragment is not allowed');
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (trustDomain.includes('@')) throw invalid(uri, 'userinfo is not allowed');
  if (trustDomain.includes(':')) throw invalid(uri, 'a port is not allowed');
  if (trustDomain.length === 0) throw invalid(uri, 'trust domain is empty');
  if (Buffer.byteLength(trustDomain) > MAX_TRUST_DOMAIN_BYTES) {
    throw invalid(uri, `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  }
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    throw invalid(uri, 'trust domain may hold only lower-case letters, digits, ".", "-" and "_"');
  }
  if (path !== '') {
    const segments = path.slice(1).split('/');
    for (const segment of segments) {
      if (segment === '') throw invalid(uri, 'path has an empty segment or a trailing "/"');
      if (segment === '.' || segment === '..') throw invalid(uri, 'path segments "." and ".." are not allowed');
      if (!SEGMENT_CHARS.test(segment)) {
        throw invalid(uri, `path segment ${JSON.stringify(segment)} may hold only letters, digits, ".", "-" and "_"`);
      }
    }
  }
  const m = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(path);
  const id: SpiffeId = m
    ? { uri, trustDomain, path, namespace: m[1], serviceAccount: m[2] }
    : { uri, trustDomain, path };
  return Object.freeze(id);
}

/** Like `parseSpiffeId` but returns `undefined` instead of throwing. */
export function tryParseSpiffeId(uri: string): SpiffeId | undefined {
  try {
    return parseSpiffeId(uri);
  } catch {
    return undefined;
  }
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`, validated the same way `parseSpiffeId` validates. */
export function formatSpiffeId(identity: WorkloadIdentity): string {
  const uri = `spiffe://${identity.trustDomain}/ns/${identity.namespace}/sa/${identity.serviceAccount}`;
  const parsed = parseSpiffeId(uri);
  if (parsed.namespace !== identity.namespace || parsed.serviceAccount !== identity.serviceAccount) {
    throw invalid(uri, 'namespace and service account must be single path segments');
  }
  return uri;
}

/**
 * Splits Node's `X509Certificate.subjectAltName` string (`DNS:a, URI:spiffe://…`; values with special characters
 * come JSON-quoted, e.g. `URI:"a,b"`) into `[type, value]` pairs.
 */
export function splitSubjectAltName(san: string | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (!san) return out;
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    const type = san.slice(i, colon).trim();
    let j = colon + 1;
    let value: string;
    if (san[j] === '"') {
      // JSON-quoted value: scan to the closing quote, honouring escapes.
      let k = j + 1;
      while (k < san.length && san[k] !== '"') k += san[k] === '\\' ? 2 : 1;
      value = JSON.parse(san.slice(j, k + 1)) as string;
      j = k + 1;
    } else {
      const comma = san.indexOf(', ', j);
      value = comma < 0 ? san.slice(j) : san.slice(j, comma);
      j = comma < 0 ? san.length : comma;
    }
    out.push([type, value]);
    const next = san.indexOf(', ', j);
    i = next < 0 ? san.length : next + 2;
  }
  return out;
}

/**
 * The SPIFFE id in a certificate's URI SAN (PEM string or DER bytes; for a PEM chain, the first certificate).
 * Throws `TRELLIS_ERR_SPIFFE_ID` when there is no `spiffe://` URI SAN or more than one (the SPIFFE X.509-SVID
 * standard allows exactly one), or it is invalid.
 */
export function spiffeIdFromCertificate(pemOrDer: string | Buffer | Uint8Array): SpiffeId {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(typeof pemOrDer === 'string' ? pemOrDer : Buffer.from(pemOrDer));
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_SPIFFE_ID', 'not an X.509 certificate (PEM or DER)', { cause });
  }
  const uris = splitSubjectAltName(cert.subjectAltName)
    .filter(([type, value]) => type === 'URI' && value.toLowerCase().startsWith('spiffe:'))
    .map(([, value]) => value);
  if (uris.length === 0) throw new TrellisError('TRELLIS_ERR_SPIFFE_ID', 'certificate has no spiffe:// URI SAN');
  if (uris.length > 1) {
    throw new TrellisError('TRELLIS_ERR_SPIFFE_ID', `certificate has ${uris.length} spiffe:// URI SANs; exactly one is allowed`);
  }
  return parseSpiffeId(uris[0]);
}
