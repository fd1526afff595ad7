/** SPIFFE identities in certificates: reading URI SANs and checking them against a cluster's expected SANs. */
import type { PeerCertificate } from 'node:tls';
import { type TlsContext, matchString } from '@trellis/api';

/** Parses Node's `subjectaltname` string (`URI:spiffe://…, DNS:…`) into typed entries. */
export function subjectAltNames(san: string | undefined): { type: string; value: string }[] {
  if (!san) return [];
  return san.split(/,\s*/).map((part) => {
    const i = part.indexOf(':');
    return { type: part.slice(0, i), value: part.slice(i + 1) };
  });
}

/** The first URI SAN (the SPIFFE id), or null. */
export function spiffeIdOf(cert: PeerCertificate | null | undefined): string | null {
  if (!cert || !('subjectaltname' in cert)) return null;
  return subjectAltNames(cert.subjectaltname).find((s) => s.type === 'URI')?.value ?? null;
}

/**
 * `checkServerIdentity` for upstream TLS: passes when the cluster expects no SAN, or when one of the peer's SANs
 * of the expected type matches. Returns an Error (rejecting the handshake) otherwise.
 */
export function verifyPeerSans(t: TlsContext, cert: PeerCertificate): Error | undefined {
  if (!t.matchSubjectAltNames.length) return undefined;
  const sans = subjectAltNames(cert.subjectaltname);
  const type = (k: string) => (k === 'IP_ADDRESS' ? 'IP Address' : k);
  for (const m of t.matchSubjectAltNames) {
    if (sans.some((s) => s.type === type(m.type) && matchString(m.match, s.value))) return undefined;
  }
  const err = new Error(`peer identity ${sans.map((s) => `${s.type}:${s.value}`).join(', ') || '(none)'} is not one the cluster expects`) as Error & { code: string };
  err.code = 'TRELLIS_ERR_PEER_IDENTITY';
  return err;
}
