/**
 * DS-09 (end-user JWT) through a real control plane and a real proxy: RequestAuthentication and AuthorizationPolicy
 * as YAML in the control plane's config directory; the proxy takes its inbound listener over ADS and enforces
 * jwt_authn (and RBAC) on the workload's port.
 *
 * The AuthorizationPolicies: ALLOW for any request principal (`*`) or paths under `/public/`, DENY for one principal.
 * Four issuers, one per JWKS form: a URL served by a local HTTP server (fetched by the proxy through the mesh
 * cluster of a ServiceEntry, token in `x-goog-iap-jwt-assertion` as in DS-09), an https URL (ServiceEntry plus
 * DestinationRule SIMPLE with `caCertificates`, as DS-09 declares Google's key host), inline `jwks`, and `file://`.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Proxy, nodeIdentity, silentLogger } from '@trellis/proxy';
import { FakeSdsServer, issueTestCert, makeTestCa } from '@trellis/testing';
import { eventually, startControl, type ControlProcess } from './processes.js';
import { jwks, makeKey, signJwt, unsignedJwt, type TestKey } from './policy-jwt-signing.js';

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string; seen: Record<string, string> | null }

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host: 'httpbin.foo.svc.cluster.local:8000', ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let seen: Record<string, string> | null = null;
        try { seen = (JSON.parse(body) as { headers: Record<string, string> }).headers; } catch { /* local reply */ }
        resolve({ status: res.statusCode!, headers: res.headers, body, seen });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const listen = async (s: http.Server): Promise<number> => { await new Promise<void>((r) => s.listen(0, '127.0.0.1', r)); return (s.address() as AddressInfo).port; };
const close = (s: http.Server | undefined) => new Promise<void>((r) => { if (!s) { r(); return; } s.closeAllConnections(); s.close(() => r()); });

const URL_ISS = 'https://url-issuer.example';
const INLINE_ISS = 'https://inline-issuer.example';
const FILE_ISS = 'https://file-issuer.example';
const TLS_ISS = 'https://tls-issuer.example';
const AUD = 'httpbin';

describe('policy: JWT (DS-09) through the control plane and a proxy', function () {
  this.timeout(60_000);
  let dir: string;
  let app: http.Server;
  let jwksServer: http.Server | undefined;
  let tlsJwksServer: https.Server | undefined;
  let control: ControlProcess | undefined;
  let sds: FakeSdsServer | undefined;
  let proxy: Proxy | undefined;
  let inbound = 0;
  let jwksFetches = 0;
  let urlKey: TestKey, inlineKey: TestKey, fileKey: TestKey, rotated: TestKey, impostor: TestKey, tlsKey: TestKey;
  let served: TestKey[];
  const now = () => Math.floor(Date.now() / 1000);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tB-jwt-'));
    urlKey = makeKey('RS256', 'url-1');
    rotated = makeKey('ES256', 'url-2');
    impostor = makeKey('RS256', 'url-1');
    tlsKey = makeKey('ES384', 'tls-1');
    inlineKey = makeKey('ES256', 'inline-1');
    fileKey = makeKey('PS256', 'file-1');
    served = [urlKey];
    app = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ path: req.url, headers: req.headers })); });
    const appPort = await listen(app);
    jwksServer = http.createServer((req, res) => {
      jwksFetches++;
      if (req.url !== '/keys') { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(jwks(...served));
    });
    const jwksPort = await listen(jwksServer);
    const ca = makeTestCa();
    const serverCert = issueTestCert(ca, 'spiffe://cluster.local/ns/istio-system/sa/jwks', { dnsNames: ['keys.tls.test'] });
    tlsJwksServer = https.createServer({ key: serverCert.keyPem, cert: serverCert.chainPem }, (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(jwks(tlsKey)); });
    await new Promise<void>((r) => tlsJwksServer!.listen(0, '127.0.0.1', r));
    const tlsJwksPort = (tlsJwksServer.address() as AddressInfo).port;
    const caFile = join(dir, 'jwks-ca.pem');
    writeFileSync(caFile, ca.certPem);
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, jwks(fileKey));
    const cfg = join(dir, 'config');
    mkdirSync(cfg);
    writeFileSync(join(cfg, 'mesh.yaml'), `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [httpbin.foo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP, targetPort: ${appPort}}]
  endpoints: [{address: 127.0.0.1, labels: {app: httpbin}, serviceAccount: httpbin}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: jwks, namespace: istio-system}
spec:
  hosts: [jwks.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: ${jwksPort}, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-jwks, namespace: istio-system}
spec:
  hosts: [keys.tls.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: ${tlsJwksPort}, name: https, protocol: HTTPS}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-jwks, namespace: istio-system}
spec:
  host: keys.tls.test
  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: ${caFile}}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: ${URL_ISS}
    audiences: [${AUD}]
    jwksUri: http://jwks.test:${jwksPort}/keys
    fromHeaders: [{name: x-goog-iap-jwt-assertion}]
    outputClaimToHeaders: [{header: x-iap-email, claim: email}]
  - issuer: ${INLINE_ISS}
    jwks: '${jwks(inlineKey)}'
    outputPayloadToHeader: x-jwt-payload
  - issuer: ${FILE_ISS}
    jwksUri: file://${jwksFile}
    fromParams: [token]
  - issuer: ${TLS_ISS}
    jwksUri: https://keys.tls.test:${tlsJwksPort}/keys
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - from:
    - source: {requestPrincipals: ["*"]}
  - to:
    - operation: {paths: ["/public/*"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-mallory, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - from:
    - source: {requestPrincipals: ["${URL_ISS}/mallory"]}
`);
    control = await startControl([
      '--config-dir', cfg, '--state-dir', join(dir, 'state'), '--listen-xds', 'off', '--listen-xds-plaintext', '127.0.0.1:0',
      '--listen-http', '127.0.0.1:0', '--debounce-after', '20ms', '--debounce-max', '200ms',
    ], ['xds-plaintext']);
    sds = await new FakeSdsServer().start();
    sds.setTrustBundle(`file-root:${caFile}`, ca.certPem);
    sds.setCertificate('default', issueTestCert(ca, 'spiffe://cluster.local/ns/foo/sa/httpbin'));
    sds.setTrustBundle('ROOTCA', ca.certPem);
    proxy = new Proxy({
      node: nodeIdentity({ mode: 'sidecar', ip: '127.0.0.1', workloadName: 'httpbin', namespace: 'foo', serviceAccount: 'httpbin', labels: { app: 'httpbin' }, clusterId: 'Kubernetes', network: '' }),
      xds: { target: control.addresses['xds-plaintext']!, credentials: grpc.credentials.createInsecure() },
      sdsSocket: sds.socketPath, logger: silentLogger(),
      ports: { outbound: 0, inbound: 0, admin: 0, prometheus: 0, health: 0 },
      bindAddress: '127.0.0.1', adminAddress: '127.0.0.1', statusAddress: '127.0.0.1',
      namespace: 'foo', serviceAccount: 'httpbin', workloadName: 'httpbin',
      // no iptables here: every inbound connection is "for" the app's port
      originalDst: () => ({ address: '127.0.0.1', port: appPort }),
    });
    await proxy.start();
    await proxy.whenReady();
    inbound = await eventually('the inbound listener', () => proxy!.listeners.port('virtualInbound'));
  });

  after(async () => {
    await proxy?.close();
    await sds?.stop();
    await control?.stop();
    await close(app);
    await close(jwksServer);
    await new Promise<void>((r) => { if (!tlsJwksServer) { r(); return; } tlsJwksServer.closeAllConnections(); tlsJwksServer.close(() => r()); });
    rmSync(dir, { recursive: true, force: true });
  });

  const urlToken = (claims: Record<string, unknown> = {}, key: TestKey = urlKey) =>
    signJwt(key, { iss: URL_ISS, sub: 'alice', aud: AUD, email: 'alice@example.com', exp: now() + 600, ...claims });

  it('a valid token (JWKS fetched from a URL through the mesh) passes; the claim header reaches the app and the token does not', async () => {
    const r = await get(inbound, '/headers', { 'x-goog-iap-jwt-assertion': urlToken() });
    expect(r.status, r.body).to.equal(200);
    expect(r.seen!['x-iap-email']).to.equal('alice@example.com');
    expect(r.seen!['x-goog-iap-jwt-assertion']).to.equal(undefined);
    expect(jwksFetches).to.equal(1);
    // cached: no second fetch
    expect((await get(inbound, '/headers', { 'x-goog-iap-jwt-assertion': urlToken({ sub: 'bob' }) })).status).to.equal(200);
    expect(jwksFetches).to.equal(1);
  });

  for (const [what, token, status, body] of [
    ['expired', () => urlToken({ exp: now() - 3600 }), 401, 'Jwt is expired'],
    ['from another issuer', () => urlToken({ iss: 'https://evil.example' }), 401, 'Jwt issuer is not configured'],
    ['for another audience', () => urlToken({ aud: 'someone-else' }), 403, 'Audiences in Jwt are not allowed'],
    ['signed by another key', () => urlToken({}, impostor), 401, 'Jwt verification fails'],
    ['unsigned (alg none)', () => unsignedJwt({ iss: URL_ISS, sub: 'alice', aud: AUD }), 401, 'Jwt header [alg] is not supported'],
    ['not a JWT', () => 'not-a-token', 401, 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections'],
  ] as const) {
    it(`a token ${what} is refused: ${status} "${body}"`, async () => {
      const r = await get(inbound, '/headers?x=1', { 'x-goog-iap-jwt-assertion': token() });
      expect(r.status).to.equal(status);
      expect(r.body).to.equal(body);
      expect(r.headers['www-authenticate']).to.equal('Bearer realm="http://httpbin.foo.svc.cluster.local:8000/headers?x=1", error="invalid_token"');
    });
  }

  it('a key rotated at the issuer is fetched when a token names its kid', async () => {
    served = [urlKey, rotated];
    const before = jwksFetches;
    const r = await get(inbound, '/headers', { 'x-goog-iap-jwt-assertion': urlToken({}, rotated) });
    expect(r.status, r.body).to.equal(200);
    expect(jwksFetches).to.equal(before + 1);
  });

  it('inline JWKS: Authorization: Bearer, payload forwarded to the app as base64url', async () => {
    const t = signJwt(inlineKey, { iss: INLINE_ISS, sub: 'carol', scope: 'read write', exp: now() + 600 });
    const r = await get(inbound, '/headers', { authorization: `Bearer ${t}` });
    expect(r.status, r.body).to.equal(200);
    expect(JSON.parse(Buffer.from(r.seen!['x-jwt-payload']!, 'base64url').toString())).to.include({ sub: 'carol', iss: INLINE_ISS });
    expect(r.seen!.authorization).to.equal(undefined);
    const bad = await get(inbound, '/headers', { authorization: `Bearer ${signJwt(urlKey, { iss: INLINE_ISS, sub: 'carol' }, { kid: 'inline-1', alg: 'RS256' })}` });
    expect(bad.status).to.equal(401);
  });

  it('https JWKS through a ServiceEntry with DestinationRule SIMPLE TLS (DS-09\'s shape)', async () => {
    const t = signJwt(tlsKey, { iss: TLS_ISS, sub: 'erin', exp: now() + 600 });
    const r = await get(inbound, '/headers', { authorization: `Bearer ${t}` });
    expect(r.status, r.body).to.equal(200);
  });

  it('file:// JWKS: token in a query parameter', async () => {
    const t = signJwt(fileKey, { iss: FILE_ISS, sub: 'dave', exp: now() + 600 });
    expect((await get(inbound, `/headers?token=${t}`)).status).to.equal(200);
    expect((await get(inbound, `/headers?token=${t.slice(0, -3)}xyz`)).body).to.equal('Jwt verification fails');
  });

  it('with requestPrincipals ["*"] a request without a token is refused with 403 (DS-09)', async () => {
    const r = await get(inbound, '/headers');
    expect(r.status).to.equal(403);
    expect(r.body).to.equal('RBAC: access denied');
    expect((await get(inbound, '/headers', { 'x-goog-iap-jwt-assertion': urlToken() })).status).to.equal(200);
  });

  it('jwt_authn lets a request without a token through (allow_missing): a path open to anyone answers 200, a bad token there 401', async () => {
    expect((await get(inbound, '/public/x')).status).to.equal(200);
    expect((await get(inbound, '/public/x', { 'x-goog-iap-jwt-assertion': urlToken({ exp: now() - 3600 }) })).status).to.equal(401);
  });

  it('the request principal iss/sub reaches authorization: a DENY on one principal refuses only that one', async () => {
    expect((await get(inbound, '/headers', { 'x-goog-iap-jwt-assertion': urlToken({ sub: 'mallory' }) })).status).to.equal(403);
    expect((await get(inbound, '/headers', { 'x-goog-iap-jwt-assertion': urlToken({ sub: 'alice' }) })).status).to.equal(200);
  });
});
