/** The jwt_authn filter config decoder: the wire form (encodeAny → decodeAny) as the control plane sends it. */
import { expect } from 'chai';
import { EXT_TYPE_URL, HTTP_FILTER_DECODERS, decodeAny, decodeJwtAuthn, encodeAny, type JwtAuthnConfig } from '../src/index.js';

const wire = (o: Record<string, unknown>) => decodeAny(encodeAny(EXT_TYPE_URL.jwtAuthn, o));

describe('api: jwt_authn config decoder', () => {
  it('is registered for the JwtAuthentication type', () => {
    expect(HTTP_FILTER_DECODERS[EXT_TYPE_URL.jwtAuthn]).to.equal(decodeJwtAuthn);
  });

  it('decodes providers, requirements and rules as Istio generates them', () => {
    const c = decodeJwtAuthn(wire({
      providers: {
        'origins-0': {
          issuer: 'https://cloud.google.com/iap', audiences: ['/projects/1'], from_headers: [{ name: 'X-Goog-IAP-JWT-Assertion' }],
          remote_jwks: { http_uri: { uri: 'https://www.gstatic.com/iap/verify/public_key-jwk', cluster: 'outbound|443||www.gstatic.com', timeout: { seconds: 5 } }, cache_duration: { seconds: 300 } },
          payload_in_metadata: 'payload', normalize_payload_in_metadata: { space_delimited_claims: ['permission', 'scope'] },
          claim_to_headers: [{ header_name: 'X-IAP-Email', claim_name: 'email' }],
        },
        'origins-1': { issuer: 'b', local_jwks: { filename: '/etc/jwks.json' }, forward: true, from_params: ['t'], from_cookies: ['c'], forward_payload_header: 'x-p', clock_skew_seconds: 5 },
        'origins-2': { issuer: 'c', local_jwks: { inline_string: '{"keys":[]}' } },
      },
      rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { provider_name: 'origins-1' }, { requires_all: { requirements: [
        { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] } },
        { provider_and_audiences: { provider_name: 'origins-2', audiences: ['x'] } },
      ] } }] } } }, { match: { path: '/healthz' } }],
      bypass_cors_preflight: true,
    }), 'typed_config') as JwtAuthnConfig;
    expect(Object.isFrozen(c)).to.equal(true);
    const p0 = c.providers['origins-0']!;
    expect(p0.jwks).to.deep.equal({ kind: 'remote', uri: 'https://www.gstatic.com/iap/verify/public_key-jwk', cluster: 'outbound|443||www.gstatic.com', timeoutMs: 5000, cacheDurationMs: 300_000 });
    expect(p0.fromHeaders).to.deep.equal([{ name: 'x-goog-iap-jwt-assertion', valuePrefix: '' }]);
    expect(p0.claimToHeaders).to.deep.equal([{ headerName: 'x-iap-email', claimName: 'email' }]);
    expect(p0.spaceDelimitedClaims).to.deep.equal(['permission', 'scope']);
    expect(p0.clockSkewSeconds).to.equal(60);
    expect(p0.forward).to.equal(false);
    const p1 = c.providers['origins-1']!;
    expect(p1.jwks).to.deep.equal({ kind: 'file', filename: '/etc/jwks.json' });
    expect([p1.forward, p1.fromParams, p1.fromCookies, p1.forwardPayloadHeader, p1.clockSkewSeconds]).to.deep.equal([true, ['t'], ['c'], 'x-p', 5]);
    expect(c.providers['origins-2']!.jwks).to.deep.equal({ kind: 'inline', text: '{"keys":[]}' });
    const req = c.rules[0]!.requires!;
    expect(req.kind).to.equal('any');
    const all = (req as { requirements: readonly { kind: string; requirements?: readonly unknown[] }[] }).requirements[2]!;
    expect(all.kind).to.equal('all');
    expect(all.requirements![1]).to.deep.equal({ kind: 'provider', provider: 'origins-2', audiences: ['x'] });
    expect(c.rules[1]!.requires).to.equal(null);
    expect(c.rules[1]!.match.kind).to.equal('path');
    expect(c.bypassCorsPreflight).to.equal(true);
  });

  it('rejects unknown providers, providers without keys and rules without match, naming the field', () => {
    const bad = (o: Record<string, unknown>) => () => decodeJwtAuthn(wire(o), 'typed_config');
    expect(bad({ providers: { a: { issuer: 'x', local_jwks: { inline_string: '{}' } } }, rules: [{ match: { prefix: '/' }, requires: { provider_name: 'b' } }] }))
      .to.throw('typed_config.rules[0].requires.provider_name: unknown provider "b"');
    expect(bad({ providers: { a: { issuer: 'x' } } })).to.throw('typed_config.providers.a: one of local_jwks, remote_jwks is required');
    expect(bad({ providers: { a: { issuer: 'x', remote_jwks: { http_uri: { uri: 'not a url', cluster: 'c' } } } } })).to.throw('typed_config.providers.a.remote_jwks.http_uri.uri: invalid URL');
    expect(() => decodeJwtAuthn({ rules: [{ requires: { allow_missing: {} } }] }, 'tc')).to.throw('tc.rules[0].match: required');
  });
});
