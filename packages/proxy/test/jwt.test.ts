/**
 * JWT verification (jwt/): token checks in Envoy's order with Envoy's texts, key sets, the remote JWKS cache with an
 * injected clock, and the jwt_authn layer driven with a stub `next` (no sockets).
 */
import { expect } from 'chai';
import { createPublicKey } from 'node:crypto';
import { EXT_TYPE_URL, decodeJwtAuthn, type HttpConnectionManager, type JwtProvider } from '@trellis/api';
import type { HttpContext } from '../src/http/context.js';
import { jwtAuthnLayer } from '../src/http/layers/jwt-authn.js';
import { jwtDenialChannel, type JwtDenialEvent } from '../src/jwt/events.js';
import { parseJwks } from '../src/jwt/jwks.js';
import { RemoteJwks } from '../src/jwt/key-source.js';
import { JwtStatus } from '../src/jwt/status.js';
import { checkClaims, parseJwt, verifySignature, type ParsedJwt } from '../src/jwt/token.js';
import { jwks, makeKey, signJwt, unsignedJwt, type TestKey } from './jwt-signing.js';

const ISS = 'https://issuer.example';
const NOW = 1_800_000_000_000; // ms
const nowS = NOW / 1000;

function provider(over: Partial<JwtProvider> = {}): JwtProvider {
  return {
    name: 'p', issuer: ISS, audiences: [], jwks: { kind: 'inline', text: '' }, forward: false, fromHeaders: [], fromParams: [], fromCookies: [],
    forwardPayloadHeader: null, padForwardPayloadHeader: false, payloadInMetadata: 'payload', spaceDelimitedClaims: [], claimToHeaders: [],
    clockSkewSeconds: 60, requireExpiration: false, maxLifetimeMs: null, ...over,
  };
}

function parsed(t: string): ParsedJwt {
  const p = parseJwt(t);
  if (typeof p === 'string') throw new Error(p);
  return p;
}

describe('jwt: tokens and keys', function () {
  this.timeout(20_000);
  let rs256: TestKey, rs384: TestKey, rs512: TestKey, ps256: TestKey, es256: TestKey, es384: TestKey, other: TestKey;
  before(() => {
    rs256 = makeKey('RS256', 'rs');
    rs384 = { ...rs256, alg: 'RS384', kid: 'rs384', jwk: { ...rs256.jwk, alg: 'RS384', kid: 'rs384' } };
    rs512 = { ...rs256, alg: 'RS512', kid: 'rs512', jwk: { ...rs256.jwk, alg: 'RS512', kid: 'rs512' } };
    ps256 = { ...rs256, alg: 'PS256', kid: 'ps', jwk: { ...rs256.jwk, alg: 'PS256', kid: 'ps' } };
    es256 = makeKey('ES256', 'es');
    es384 = makeKey('ES384', 'es384');
    other = makeKey('RS256', 'rs');
  });
  const claims = { iss: ISS, sub: 'alice', aud: 'api', exp: nowS + 600 };

  it('verifies RS256, RS384, RS512, PS256, ES256 and ES384 signatures', () => {
    const set = parseJwks(jwks(rs256, rs384, rs512, ps256, es256, es384));
    expect(set.status).to.equal(JwtStatus.Ok);
    expect(set.keys).to.have.length(6);
    for (const k of [rs256, rs384, rs512, ps256, es256, es384]) {
      const jwt = parsed(signJwt(k, claims));
      expect(jwt.alg).to.equal(k.alg);
      expect(verifySignature(jwt, set), k.alg).to.equal(JwtStatus.Ok);
    }
  });

  it('refuses a bad signature, a key of the wrong type and an unknown kid', () => {
    const set = parseJwks(jwks(rs256, es256));
    const forged = parsed(signJwt(other, claims)); // same kid, other key
    expect(verifySignature(forged, set)).to.equal(JwtStatus.JwtVerificationFail);
    const t = signJwt(rs256, claims);
    const tampered = parsed(t.replace(/\.[^.]+\./, `.${Buffer.from(JSON.stringify({ ...claims, sub: 'mallory' })).toString('base64url')}.`));
    expect(verifySignature(tampered, set)).to.equal(JwtStatus.JwtVerificationFail);
    expect(verifySignature(parsed(signJwt(rs256, claims, { kid: 'rotated' })), set)).to.equal(JwtStatus.JwksKidAlgMismatch);
    // ES256 header but the kid names the RSA key: no key fits
    expect(verifySignature(parsed(signJwt(es256, claims, { kid: 'rs' })), set)).to.equal(JwtStatus.JwksKidAlgMismatch);
    // no kid in the token: every fitting key is tried
    expect(verifySignature(parsed(signJwt(rs256, claims, { kid: undefined })), set)).to.equal(JwtStatus.Ok);
  });

  it('refuses alg none, HMAC and malformed tokens with Envoy\'s texts', () => {
    expect(parseJwt(unsignedJwt(claims))).to.equal(JwtStatus.JwtHeaderNotImplementedAlg);
    expect(parseJwt(signJwt(rs256, claims, { alg: 'HS256' }))).to.equal(JwtStatus.JwtHeaderNotImplementedAlg);
    expect(parseJwt('abc')).to.equal(JwtStatus.JwtBadFormat);
    expect(parseJwt('a.b.c.d')).to.equal(JwtStatus.JwtBadFormat);
    expect(parseJwt('!!.e30.')).to.equal(JwtStatus.JwtHeaderParseErrorBadBase64);
    expect(parseJwt(`${Buffer.from('nope').toString('base64url')}.e30.`)).to.equal(JwtStatus.JwtHeaderParseErrorBadJson);
    expect(parseJwt(`${Buffer.from('{"alg":5}').toString('base64url')}.e30.`)).to.equal(JwtStatus.JwtHeaderBadAlg);
    const h = Buffer.from('{"alg":"RS256"}').toString('base64url');
    expect(parseJwt(`${h}.${Buffer.from('[1]').toString('base64url')}.`)).to.equal(JwtStatus.JwtPayloadParseErrorBadJson);
    expect(parseJwt(`${h}.${Buffer.from('{"exp":"soon"}').toString('base64url')}.`)).to.equal(JwtStatus.JwtPayloadParseErrorExpNotInteger);
    expect(parseJwt(`${h}.${Buffer.from('{"aud":[1]}').toString('base64url')}.`)).to.equal(JwtStatus.JwtPayloadParseErrorAudNotString);
    expect(parseJwt(`${h}.e30.***`)).to.equal(JwtStatus.JwtSignatureParseErrorBadBase64);
  });

  it('checks issuer, expiry and not-before with 60 s of clock skew, and audiences', () => {
    const p = provider({ audiences: ['api', 'https://other.example/'] });
    const at = (c: Record<string, unknown>) => checkClaims(parsed(signJwt(rs256, c)), p, NOW);
    expect(at(claims)).to.equal(JwtStatus.Ok);
    expect(at({ ...claims, iss: 'https://evil.example' })).to.equal(JwtStatus.JwtUnknownIssuer);
    expect(at({ ...claims, exp: nowS - 61 })).to.equal(JwtStatus.JwtExpired);
    expect(at({ ...claims, exp: nowS - 59 })).to.equal(JwtStatus.Ok);
    expect(at({ ...claims, nbf: nowS + 61 })).to.equal(JwtStatus.JwtNotYetValid);
    expect(at({ ...claims, nbf: nowS + 59 })).to.equal(JwtStatus.Ok);
    expect(at({ ...claims, aud: 'web' })).to.equal(JwtStatus.JwtAudienceNotAllowed);
    expect(at({ ...claims, aud: ['web', 'api'] })).to.equal(JwtStatus.Ok);
    expect(at({ ...claims, aud: 'other.example' })).to.equal(JwtStatus.Ok); // scheme and trailing slash ignored
    expect(at({ iss: ISS, sub: 'x' })).to.equal(JwtStatus.JwtAudienceNotAllowed);
    expect(checkClaims(parsed(signJwt(rs256, { iss: ISS })), provider({ requireExpiration: true }), NOW)).to.equal(JwtStatus.JwtExpired);
    expect(checkClaims(parsed(signJwt(rs256, { ...claims, aud: 'web' })), p, NOW, ['web'])).to.equal(JwtStatus.Ok);
  });

  it('parses key sets: bad JSON, no keys, unusable keys, a PEM key', () => {
    expect(parseJwks('{').status).to.equal(JwtStatus.JwksParseError);
    expect(parseJwks('{}').status).to.equal(JwtStatus.JwksNoKeys);
    expect(parseJwks('{"keys":{}}').status).to.equal(JwtStatus.JwksBadKeys);
    expect(parseJwks('{"keys":[{"kty":"oct","k":"AAAA"},{"kty":"RSA","n":"!"}]}').status).to.equal(JwtStatus.JwksNoValidKeys);
    expect(parseJwks('').status).to.equal(JwtStatus.JwksParseError);
    const pem = rs256.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(parseJwks(pem).status).to.equal(JwtStatus.JwksNoValidKeys); // a private key is not a public key set
    const pub = parseJwks(makePublicPem(rs256));
    expect(pub.status).to.equal(JwtStatus.Ok);
    expect(verifySignature(parsed(signJwt(rs256, claims)), pub)).to.equal(JwtStatus.Ok);
  });
});

function makePublicPem(k: TestKey): string {
  return createPublicKey(k.privateKey).export({ format: 'pem', type: 'spki' }).toString();
}

describe('jwt: remote JWKS cache', () => {
  let k1: TestKey, k2: TestKey;
  before(() => { k1 = makeKey('ES256', 'k1'); k2 = makeKey('ES256', 'k2'); });
  const source = { kind: 'remote' as const, uri: 'http://jwks.test/keys', cluster: 'outbound|80||jwks.test', timeoutMs: 1000, cacheDurationMs: 60_000 };

  function remote(fetchImpl: () => Promise<string>) {
    let t = 0;
    const calls = { n: 0 };
    const r = new RemoteJwks(source, { fetch: () => { calls.n++; return fetchImpl(); }, now: () => t, minRefetchIntervalMs: 10_000, failureRetryMs: 1_000 });
    return { r, calls, advance: (ms: number) => { t += ms; } };
  }

  it('refuses until the first fetch succeeds, shares one fetch between concurrent requests', async () => {
    let body: string | Error = new Error('down');
    const { r, calls } = remote(async () => { if (body instanceof Error) throw body; return body; });
    const [a, b] = await Promise.all([r.keys(), r.keys()]);
    expect(a.status).to.equal(JwtStatus.JwksFetchFail);
    expect(b).to.equal(a);
    expect(calls.n).to.equal(1);
    body = jwks(k1);
    const ok = await r.keys();
    expect(ok.status).to.equal(JwtStatus.Ok);
    expect(calls.n).to.equal(2);
    expect(r.keys()).to.equal(ok); // cached: synchronous
    expect(calls.n).to.equal(2);
  });

  it('serves the cached keys past cache_duration while refreshing, and keeps them when the refresh fails', async () => {
    let body: string | Error = jwks(k1);
    const { r, calls, advance } = remote(async () => { if (body instanceof Error) throw body; return body; });
    const first = await r.keys();
    advance(60_001);
    body = new Error('down');
    expect(r.keys()).to.equal(first); // stale but served; refresh started
    await new Promise((res) => setImmediate(res));
    expect(calls.n).to.equal(2);
    expect(r.keys()).to.equal(first); // failed refresh: last good keys, retry after failureRetryMs
    expect(calls.n).to.equal(2);
    advance(1_001);
    body = jwks(k2);
    r.keys();
    await new Promise((res) => setImmediate(res));
    expect(calls.n).to.equal(3);
    expect((r.keys() as { keys: readonly { kid: string | null }[] }).keys.map((k) => k.kid)).to.deep.equal(['k2']);
  });

  it('refetches for an unknown kid at most once per interval (key rotation)', async () => {
    let body = jwks(k1);
    const { r, calls, advance } = remote(async () => body);
    await r.keys();
    body = jwks(k1, k2);
    const again = r.refetchForUnknownKid();
    expect(again).to.not.equal(null);
    expect((await again!).keys).to.have.length(2);
    expect(r.refetchForUnknownKid()).to.equal(null); // rate limited
    advance(10_000);
    expect(r.refetchForUnknownKid()).to.not.equal(null);
    expect(calls.n).to.equal(3);
  });
});

// ---- the layer ----

interface Reply { status: number; headers: Record<string, string>; body: string }

function fakeCtx(hcm: HttpConnectionManager, o: { method?: string; path?: string; headers?: Record<string, string> } = {}): { ctx: HttpContext; reply: () => Reply | null } {
  let reply: Reply | null = null;
  const res = {
    headersSent: false,
    writeHead(status: number, headers: Record<string, string>) { reply = { status, headers, body: '' }; this.headersSent = true; return this; },
    end(body?: string) { if (reply) reply.body = body ?? ''; },
    addTrailers() {},
  };
  const ctx = {
    req: {}, res, conn: { instance: 'i', direction: 'inbound', listener: 'virtualInbound', hcm, sourceIp: '127.0.0.1', destIp: '127.0.0.1', destPort: 80, peerPrincipal: null, tls: false },
    startNs: 0n, h2: false, method: o.method ?? 'GET', authority: 'api.example', path: o.path ?? '/data',
    headers: { 'x-forwarded-proto': 'http', ...(o.headers ?? {}) } as Record<string, string | string[]>,
    routeConfig: null, vhost: null, route: null, clusterName: '', cluster: null, host: null, responseHeadersToAdd: [], responseHeadersToRemove: [],
    responseFlags: '-', upstreamPrincipal: null, requestBytes: 0, responseBytes: 0, grpcStatus: null, upgrade: null,
  } as unknown as HttpContext;
  return { ctx, reply: () => reply };
}

function hcmWith(typed: Record<string, unknown>): HttpConnectionManager {
  return { httpFilters: [{ name: 'envoy.filters.http.jwt_authn', type: EXT_TYPE_URL.jwtAuthn, config: decodeJwtAuthn(typed, 'typed_config') }] } as unknown as HttpConnectionManager;
}

const istioRequires = { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] } };

describe('jwt: the jwt_authn layer', () => {
  let key: TestKey;
  let hcm: HttpConnectionManager;
  before(() => {
    key = makeKey('RS256', 'k1');
    hcm = hcmWith({
      providers: {
        'origins-0': {
          issuer: ISS, audiences: ['api'], local_jwks: { inline_string: jwks(key) }, payload_in_metadata: 'payload',
          normalize_payload_in_metadata: { space_delimited_claims: ['scope', 'permission'] },
          claim_to_headers: [{ header_name: 'x-user', claim_name: 'sub' }, { header_name: 'x-team', claim_name: 'org.team' }],
          forward_payload_header: 'x-jwt-payload',
        },
      },
      rules: [{ match: { prefix: '/public' } }, { match: { prefix: '/' }, requires: istioRequires }],
      bypass_cors_preflight: true,
    });
  });
  const now = () => NOW;
  const run = async (h: HttpConnectionManager, o: Parameters<typeof fakeCtx>[1]) => {
    const { ctx, reply } = fakeCtx(h, o);
    let passed = false;
    const layer = jwtAuthnLayer({ fetchJwks: () => Promise.reject(new Error('no fetch')), now })(() => { passed = true; });
    layer(ctx);
    for (let i = 0; i < 20 && !passed && reply() === null; i++) await new Promise((r) => setImmediate(r));
    return { passed, reply: reply(), ctx };
  };
  const good = () => signJwt(key, { iss: ISS, sub: 'alice', aud: 'api', exp: nowS + 600, scope: 'read write', org: { team: 'blue' } });

  it('passes a request without a token (allow_missing) with no payload metadata', async () => {
    const r = await run(hcm, {});
    expect(r.passed).to.equal(true);
    expect(r.ctx.metadata).to.equal(undefined);
  });

  it('passes a valid token: normalised payload in metadata, claim headers, payload header, token removed', async () => {
    const t = good();
    const r = await run(hcm, { headers: { authorization: `Bearer ${t}`, 'x-user': 'spoofed' } });
    expect(r.passed).to.equal(true);
    const md = r.ctx.metadata!['envoy.filters.http.jwt_authn']!.payload as Record<string, unknown>;
    expect(md.iss).to.equal(ISS);
    expect(md.sub).to.equal('alice');
    expect(md.scope).to.deep.equal(['read', 'write']);
    expect(r.ctx.headers['x-user']).to.equal('alice');
    expect(r.ctx.headers['x-team']).to.equal('blue');
    expect(r.ctx.headers['x-jwt-payload']).to.equal(t.split('.')[1]);
    expect(r.ctx.headers.authorization).to.equal(undefined);
  });

  it('strips claim and payload headers a client sends without a token', async () => {
    const r = await run(hcm, { headers: { 'x-user': 'admin', 'x-jwt-payload': 'e30' } });
    expect(r.passed).to.equal(true);
    expect(r.ctx.headers['x-user']).to.equal(undefined);
    expect(r.ctx.headers['x-jwt-payload']).to.equal(undefined);
  });

  for (const [name, make, status, code] of [
    ['expired', () => signJwt(key, { iss: ISS, sub: 'a', aud: 'api', exp: nowS - 3600 }), JwtStatus.JwtExpired, 401],
    ['wrong issuer', () => signJwt(key, { iss: 'https://evil.example', sub: 'a', aud: 'api' }), JwtStatus.JwtUnknownIssuer, 401],
    ['wrong audience', () => signJwt(key, { iss: ISS, sub: 'a', aud: 'web' }), JwtStatus.JwtAudienceNotAllowed, 403],
    ['bad signature', () => { const t = good(); return t.slice(0, -4) + (t.endsWith('AAAA') ? 'BBBB' : 'AAAA'); }, JwtStatus.JwtVerificationFail, 401],
    ['alg none', () => unsignedJwt({ iss: ISS, sub: 'a', aud: 'api' }), JwtStatus.JwtHeaderNotImplementedAlg, 401],
    ['unknown kid', () => signJwt(key, { iss: ISS, sub: 'a', aud: 'api' }, { kid: 'other' }), JwtStatus.JwksKidAlgMismatch, 401],
  ] as const) {
    it(`refuses a token that is ${name}: ${code} "${status}" with www-authenticate`, async () => {
      const r = await run(hcm, { path: '/data?x=1', headers: { authorization: `Bearer ${make()}` } });
      expect(r.passed).to.equal(false);
      expect(r.reply!.status).to.equal(code);
      expect(r.reply!.body).to.equal(status);
      expect(r.reply!.headers['www-authenticate']).to.equal('Bearer realm="http://api.example/data?x=1", error="invalid_token"');
    });
  }

  it('skips rules without requirements and CORS preflights', async () => {
    expect((await run(hcm, { path: '/public/x', headers: { authorization: 'Bearer garbage' } })).passed).to.equal(true);
    expect((await run(hcm, { method: 'OPTIONS', headers: { authorization: 'Bearer garbage', origin: 'http://a', 'access-control-request-method': 'GET' } })).passed).to.equal(true);
    expect((await run(hcm, { method: 'OPTIONS', headers: { authorization: 'Bearer garbage' } })).passed).to.equal(false);
  });

  it('reads custom headers with a prefix and query parameters; forward keeps the token', async () => {
    const h = hcmWith({
      providers: { a: { issuer: ISS, local_jwks: { inline_string: jwks(key) }, from_headers: [{ name: 'x-goog-iap-jwt-assertion' }, { name: 'x-auth', value_prefix: 'Token ' }], from_params: ['jwt'], forward: true, payload_in_metadata: 'payload' } },
      rules: [{ match: { prefix: '/' }, requires: { provider_name: 'a' } }],
    });
    const t = good();
    const viaHeader = await run(h, { headers: { 'x-goog-iap-jwt-assertion': t } });
    expect(viaHeader.passed).to.equal(true);
    expect(viaHeader.ctx.headers['x-goog-iap-jwt-assertion']).to.equal(t);
    expect((await run(h, { headers: { 'x-auth': `Token ${t}` } })).passed).to.equal(true);
    expect((await run(h, { headers: { 'x-auth': `token ${t}` } })).passed).to.equal(true);
    expect((await run(h, { headers: { 'x-auth': `TOKEN ${t.slice(0, -2)}` } })).reply!.body).to.equal(JwtStatus.JwtVerificationFail);
    expect((await run(h, { path: `/x?jwt=${t}` })).passed).to.equal(true);
    // Authorization is not a location of this provider
    const missing = await run(h, { headers: { authorization: `Bearer ${t}` } });
    expect(missing.reply!.status).to.equal(401);
    expect(missing.reply!.body).to.equal(JwtStatus.JwtMissed);
    expect(missing.reply!.headers['www-authenticate']).to.equal('Bearer realm="http://api.example/data"');
  });

  it('fetches remote keys through the fetcher, refusing with "Jwks remote fetch is failed" until it works', async () => {
    const h = hcmWith({
      providers: { r: { issuer: ISS, remote_jwks: { http_uri: { uri: 'http://jwks.test/keys', cluster: 'outbound|80||jwks.test', timeout: { seconds: 1 } }, cache_duration: { seconds: 300 } } } },
      rules: [{ match: { prefix: '/' }, requires: { provider_name: 'r' } }],
    });
    let up = false;
    let fetches = 0;
    const layer = jwtAuthnLayer({ fetchJwks: async (uri, cluster) => { fetches++; expect(uri).to.equal('http://jwks.test/keys'); expect(cluster).to.equal('outbound|80||jwks.test'); if (!up) throw new Error('down'); return jwks(key); }, now });
    const once = async () => {
      const { ctx, reply } = fakeCtx(h, { headers: { authorization: `Bearer ${good()}` } });
      let passed = false;
      layer(() => { passed = true; })(ctx);
      for (let i = 0; i < 20 && !passed && reply() === null; i++) await new Promise((r) => setImmediate(r));
      return { passed, reply: reply() };
    };
    const r1 = await once();
    expect(r1.reply!.status).to.equal(401);
    expect(r1.reply!.body).to.equal('Jwks remote fetch is failed');
    up = true;
    expect((await once()).passed).to.equal(true);
    expect((await once()).passed).to.equal(true);
    expect(fetches).to.equal(2);
  });

  it('several providers as Istio merges them: any provider verifies, an unknown issuer is refused, no token passes', async () => {
    const other = makeKey('ES256', 'k2');
    const provider = (iss: string, k: TestKey) => ({ issuer: iss, local_jwks: { inline_string: jwks(k) }, payload_in_metadata: 'payload' });
    const h = hcmWith({
      providers: { 'origins-0': provider(ISS, key), 'origins-1': provider('https://second.example', other) },
      rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { provider_name: 'origins-1' }, { requires_all: { requirements: [
        { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] } },
        { requires_any: { requirements: [{ provider_name: 'origins-1' }, { allow_missing: {} }] } },
      ] } }] } } }],
    });
    const second = signJwt(other, { iss: 'https://second.example', sub: 'bob', exp: nowS + 60 });
    const ok = await run(h, { headers: { authorization: `Bearer ${second}` } });
    expect(ok.passed).to.equal(true);
    expect((ok.ctx.metadata!['envoy.filters.http.jwt_authn']!.payload as { sub: string }).sub).to.equal('bob');
    expect((await run(h, { headers: { authorization: `Bearer ${good()}` } })).passed).to.equal(true);
    const unknown = await run(h, { headers: { authorization: `Bearer ${signJwt(other, { iss: 'https://third.example' })}` } });
    expect(unknown.reply!.body).to.equal(JwtStatus.JwtUnknownIssuer);
    const wrongKey = await run(h, { headers: { authorization: `Bearer ${signJwt(other, { iss: ISS }, { kid: 'k1', alg: 'ES256' })}` } });
    expect(wrongKey.reply!.status).to.equal(401);
    expect((await run(h, {})).passed).to.equal(true);
  });

  it('requires_all with provider_and_audiences: both tokens must verify, with the audiences of the requirement', async () => {
    const h = hcmWith({
      providers: {
        a: { issuer: ISS, local_jwks: { inline_string: jwks(key) }, from_headers: [{ name: 'x-a' }], audiences: ['ignored-here'] },
        b: { issuer: ISS, local_jwks: { inline_string: jwks(key) }, from_headers: [{ name: 'x-b' }] },
      },
      rules: [{ match: { prefix: '/' }, requires: { requires_all: { requirements: [{ provider_and_audiences: { provider_name: 'a', audiences: ['api'] } }, { provider_name: 'b' }] } } }],
    });
    const t = good();
    expect((await run(h, { headers: { 'x-a': t, 'x-b': t } })).passed).to.equal(true);
    expect((await run(h, { headers: { 'x-a': t } })).reply!.body).to.equal(JwtStatus.JwtMissed);
    const wrongAud = signJwt(key, { iss: ISS, aud: 'web' });
    expect((await run(h, { headers: { 'x-a': wrongAud, 'x-b': t } })).reply!.status).to.equal(403);
  });

  it('publishes a trellis:proxy:jwt_authn event for each refusal', async () => {
    const events: JwtDenialEvent[] = [];
    const on = (m: unknown) => { events.push(m as JwtDenialEvent); };
    jwtDenialChannel.subscribe(on);
    try {
      await run(hcm, { path: '/data?token=x', headers: { authorization: `Bearer ${signJwt(key, { iss: ISS, aud: 'api', exp: nowS - 3600 })}` } });
      await run(hcm, {});
    } finally {
      jwtDenialChannel.unsubscribe(on);
    }
    expect(events).to.deep.equal([{ instance: 'i', direction: 'inbound', listener: 'virtualInbound', responseCode: 401, status: 'Jwt is expired', issuer: ISS, method: 'GET', path: '/data', sourceIp: '127.0.0.1', sourcePrincipal: null }]);
  });

  it('is a pass-through when the HCM has no jwt_authn filter', async () => {
    const r = await run({ httpFilters: [] } as unknown as HttpConnectionManager, { headers: { authorization: 'Bearer garbage' } });
    expect(r.passed).to.equal(true);
  });
});
