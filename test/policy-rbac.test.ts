/**
 * Authorization through real proxies: trellis-control serves a config directory of ServiceEntries and
 * AuthorizationPolicies; in-process proxies (one per workload, certificates from a fake SDS) enforce the generated
 * RBAC filters on their inbound listener; clients connect with chosen source addresses and identities.
 *
 * - DS-48 / DS-10: only productpage's identity may GET details; other services are unaffected.
 * - An ALLOW policy with no rules (`spec: {}`) denies everything, HTTP and TCP; no policy allows everything.
 * - DENY beats ALLOW; notPaths/notMethods; ipBlocks / remoteIpBlocks; `when` on a header; AUDIT never denies.
 * - The path-normalization table: 50+ encodings of `/admin` all get the decision `/admin` gets (403) and none reach
 *   the application; paths that normalize to something else reach it under exactly that normalized path.
 * - Network RBAC: an ALLOW policy on a TCP port closes connections from other principals.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import diagnostics_channel from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuthzEvent } from '@trellis/proxy';
import { issueTestCert, makeTestCa, type TestCa, type TestCert } from '@trellis/testing';
import { eventually, startControl, type ControlProcess } from './processes.js';
import { type MeshProxy, type Workload, mtlsHttp, rawHttp, serviceEntries, spiffe, startMeshProxy, tcpExchange } from './policy-rbac-fixtures.js';

const WORKLOADS = {
  details: { name: 'details', namespace: 'bookinfo', sa: 'bookinfo-details', ip: '10.61.0.11' },
  locked: { name: 'locked', namespace: 'locked', sa: 'locked', ip: '10.61.0.12', tcp: true },
  open: { name: 'open', namespace: 'open', sa: 'open', ip: '10.61.0.13' },
  paths: { name: 'paths', namespace: 'paths', sa: 'paths', ip: '10.61.0.14' },
  api: { name: 'api', namespace: 'rules', sa: 'api', ip: '10.61.0.15' },
  db: { name: 'db', namespace: 'tcp', sa: 'db', ip: '10.61.0.16', tcp: true },
} as const satisfies Record<string, Workload>;

const POLICIES = `
# DS-48 (Istio lab 12): deny everything in bookinfo, then let only productpage's identity GET details.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: bookinfo}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: details-viewer, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: details}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/bookinfo/sa/bookinfo-productpage]}}]
    to: [{operation: {methods: [GET]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: locked}
spec: {}
---
# The encoding table: everything is allowed, /admin* is explicitly allowed too, and denied: deny beats allow.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: paths}
spec:
  action: ALLOW
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-admin, namespace: paths}
spec:
  action: ALLOW
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: paths}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-allow, namespace: rules}
spec:
  action: ALLOW
  rules: [{to: [{operation: {notPaths: ["/private*"], notMethods: [DELETE]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-deny-sources, namespace: rules}
spec:
  action: DENY
  rules:
  - from: [{source: {ipBlocks: [127.61.1.66]}}]
  - from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]
  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-audit, namespace: rules}
spec:
  action: AUDIT
  rules: [{to: [{operation: {paths: [/audited]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-readers, namespace: tcp}
spec:
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/tcp/sa/reader]}}]}]
`;

const FROM = '127.61.1.1';
const FROM_TCP = '127.61.2.1';

/**
 * Encodings of `/admin` that must get `/admin`'s decision. Normalization (normalize_path + merge_slashes, which
 * Istio turns on for inbound listeners) maps each to a path starting with `/admin`.
 */
const SAME_AS_ADMIN: readonly string[] = [
  '/admin', '//admin', '///admin', '/%61dmin', '/%61%64%6d%69%6e', '/%61%64%6D%69%6E', '/a%64min', '/adm%69n', '/admi%6E', '/%61dm%69n',
  '/./admin', '/././admin', '/.//admin', '//./admin', '/public/../admin', '/a/../admin', '/a/b/../../admin', '/../admin', '/../../admin', '/a/./../admin',
  '/%2e/admin', '/%2E/admin', '/%2e%2e/admin', '/%2E%2E/admin', '/.%2e/admin', '/%2e./admin', '/public/%2e%2e/admin', '/public/%2E%2e/admin', '/public/.%2E/admin', '/\\admin',
  '/public\\..\\admin', '/public/..\\admin', '/.\\admin', '/admin/', '/admin/.', '/admin/x/..', '/admin?x', '/admin?x=1&y=/../z', '/admin#', '/admin#frag',
  '/admin?#', '/admin/../admin', '/admin//', '//admin//x', '/admin;x', '/admin;jsessionid=abc', '/%61dmin;x', '/admin%2Fx', '/admin/%2e%2e/admin', '/x/..//admin',
  '/public/%2e%2e//admin', '/%7E/../admin', '/a-b_c.d~/../admin', '/admin?%2e%2e', '/ADMIN/../admin', '/%41DMIN/../admin', 'http://web/admin', 'http://web//./admin', '/admin%3Fx', '/admin%23',
  '/%2e%2e/%2e%2e/%61dmin', '/a/b/c/%2e%2e/%2e%2e/%2e%2e/admin',
];

/** Different resources after normalization: allowed, and the application sees exactly `seen`. */
const DIFFERENT: readonly { target: string; seen: string; why: string }[] = [
  { target: '/ADMIN', seen: '/ADMIN', why: 'paths are case-sensitive' },
  { target: '/Admin', seen: '/Admin', why: 'paths are case-sensitive' },
  { target: '/%41dmin', seen: '/Admin', why: '%41 is A' },
  { target: '/%2Fadmin', seen: '/%2Fadmin', why: 'an encoded slash is kept (KEEP_UNCHANGED)' },
  { target: '/%2fadmin', seen: '/%2Fadmin', why: 'an encoded slash is kept, hex uppercased' },
  { target: '/%5Cadmin', seen: '/%5Cadmin', why: 'an encoded backslash is kept' },
  { target: '/%2e%2e%2fadmin', seen: '/..%2Fadmin', why: '`..%2F` is one segment, not a dot segment' },
  { target: '/admi', seen: '/admi', why: 'not under /admin' },
  { target: '/public', seen: '/public', why: 'allowed path' },
  { target: '/public/./x/../y?q=/../', seen: '/public/y?q=/../', why: 'normalized; the query is kept verbatim' },
];

/** Refused before any policy: 400 (or Node's parser closes with 400), never reaching the application. */
const REJECTED: readonly { target: string; why: string }[] = [
  { target: '\\admin', why: 'does not start with / (refused by the HTTP/1.1 parser)' },
  { target: '/%zzadmin', why: 'invalid percent-encoding' },
  { target: '/admin%', why: 'truncated percent-encoding' },
  { target: '/ad%g0min', why: 'invalid hex digit' },
  { target: '/%2', why: 'truncated percent-encoding' },
];

describe('authorization: AuthorizationPolicy enforced by real proxies (RBAC, path normalization)', function () {
  this.timeout(60_000);
  let dir: string;
  let control: ControlProcess;
  let ca: TestCa;
  let app: http.Server;
  let tcpApp: net.Server;
  const appSeen: { method: string; url: string }[] = [];
  const proxies: Partial<Record<keyof typeof WORKLOADS, MeshProxy>> = {};
  const events: AuthzEvent[] = [];
  const onEvent = (m: unknown) => { events.push(m as AuthzEvent); };
  const certs = new Map<string, TestCert>();
  const cert = (ns: string, sa: string): TestCert => {
    const id = spiffe(ns, sa);
    if (!certs.has(id)) certs.set(id, issueTestCert(ca, id));
    return certs.get(id)!;
  };
  const port = (w: keyof typeof WORKLOADS): number => proxies[w]!.inbound;

  before(async () => {
    ca = makeTestCa();
    app = http.createServer((req, res) => {
      appSeen.push({ method: req.method ?? '', url: req.url ?? '' });
      req.resume();
      req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ url: req.url })); });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    tcpApp = net.createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
    await new Promise<void>((r) => tcpApp.listen(0, '127.0.0.1', r));
    const ports = { http: (app.address() as AddressInfo).port, tcp: (tcpApp.address() as AddressInfo).port };

    dir = mkdtempSync(join(tmpdir(), 'trellis-rbac-'));
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'config', 'services.yaml'), serviceEntries(Object.values(WORKLOADS), ports));
    writeFileSync(join(dir, 'config', 'policies.yaml'), POLICIES);
    control = await startControl([
      '--config-dir', join(dir, 'config'), '--state-dir', join(dir, 'state'), '--listen-xds', '127.0.0.1:0',
      '--listen-xds-plaintext', '127.0.0.1:0', '--listen-http', '127.0.0.1:0', '--debounce-after', '20ms', '--debounce-max', '200ms',
    ], ['xds-plaintext', 'http']);
    const started = await Promise.all(Object.entries(WORKLOADS).map(async ([k, w]) => [k, await startMeshProxy({ xds: control.addresses['xds-plaintext']!, ca, workload: w, ports })] as const));
    for (const [k, p] of started) proxies[k as keyof typeof WORKLOADS] = p;
    // The first push carries the policies (they are in the directory from the start); make sure before asserting.
    await eventually('the paths proxy to enforce deny-admin', async () => (await rawHttp(port('paths'), FROM, '/admin')).status === 403, 15_000);
    diagnostics_channel.subscribe('trellis:proxy:authz', onEvent);
  });

  after(async () => {
    diagnostics_channel.unsubscribe('trellis:proxy:authz', onEvent);
    await Promise.all(Object.values(proxies).map((p) => p.stop()));
    await control?.stop();
    app?.closeAllConnections();
    await new Promise<void>((r) => (app ? app.close(() => r()) : r()));
    await new Promise<void>((r) => (tcpApp ? tcpApp.close(() => r()) : r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('DS-48 / DS-10: only productpage\'s identity can GET details', () => {
    it('productpage (mTLS) GETs details: 200 from the application', async () => {
      const r = await mtlsHttp(port('details'), FROM, ca, cert('bookinfo', 'bookinfo-productpage'), '/details/0');
      expect(r.status).to.equal(200);
      expect(r.body).to.contain('{"url":"/details/0"}');
    });

    it('another identity gets 403 `RBAC: access denied`, and a denial event names no policy', async () => {
      events.length = 0;
      const before = appSeen.length;
      const r = await mtlsHttp(port('details'), FROM, ca, cert('bookinfo', 'bookinfo-reviews'), '/details/0');
      expect(r.status).to.equal(403);
      expect(r.body).to.equal('RBAC: access denied');
      expect(r.raw).to.match(/content-type: text\/plain/i);
      expect(appSeen.length).to.equal(before);
      const denial = events.find((e) => e.enforcedDenial);
      expect(denial).to.deep.include({ protocol: 'http', reporter: 'destination', action: 'ALLOW', result: 'denied', policy: null, shadow: false, sourcePrincipal: spiffe('bookinfo', 'bookinfo-reviews'), sourceIp: FROM });
    });

    it('productpage POSTing gets 403; so does a plaintext caller with no identity', async () => {
      expect((await mtlsHttp(port('details'), FROM, ca, cert('bookinfo', 'bookinfo-productpage'), '/details/0', { method: 'POST' })).status).to.equal(403);
      expect((await rawHttp(port('details'), FROM, '/details/0')).status).to.equal(403);
    });

    it('a workload with no policy is unaffected (no policy allows)', async () => {
      expect((await rawHttp(port('open'), FROM, '/anything', { method: 'DELETE' })).status).to.equal(200);
      expect((await mtlsHttp(port('open'), FROM, ca, cert('bookinfo', 'bookinfo-reviews'), '/x')).status).to.equal(200);
    });
  });

  describe('policy semantics', () => {
    it('an empty ALLOW policy (`spec: {}`) denies everything: HTTP 403 for any identity, TCP closed', async () => {
      expect((await rawHttp(port('locked'), FROM, '/')).status).to.equal(403);
      expect((await mtlsHttp(port('locked'), FROM, ca, cert('locked', 'locked'), '/')).status).to.equal(403);
      expect(await tcpExchange(port('locked'), FROM_TCP, 'ping')).to.equal('');
    });

    it('a denied gRPC call fails with PERMISSION_DENIED (grpc-status 7)', async () => {
      const def = { Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } };
      const Client = grpc.makeGenericClientConstructor(def, 'Echo');
      const client = new Client(`127.0.0.1:${port('locked')}`, grpc.credentials.createInsecure());
      try {
        const err = await new Promise<grpc.ServiceError | null>((resolve) => {
          (client as unknown as { Echo: (b: Buffer, cb: (e: grpc.ServiceError | null) => void) => void }).Echo(Buffer.from('x'), (e) => resolve(e));
        });
        expect(err?.code).to.equal(grpc.status.PERMISSION_DENIED);
        expect(err?.details).to.equal('RBAC: access denied');
      } finally {
        client.close();
      }
    });

    it('DENY beats ALLOW (allow-admin and allow-all are overridden by deny-admin)', async () => {
      const r = await rawHttp(port('paths'), FROM, '/admin');
      expect(r.status).to.equal(403);
      expect((await rawHttp(port('paths'), FROM, '/public')).status).to.equal(200);
    });

    const ruleCases: { name: string; target: string; method?: string; from?: string; headers?: Record<string, string>; status: number }[] = [
      { name: 'notPaths/notMethods allow an ordinary GET', target: '/items', status: 200 },
      { name: 'notPaths denies /private*', target: '/private/x', status: 403 },
      { name: 'notPaths sees the normalized path', target: '/public/..//private', status: 403 },
      { name: 'notMethods denies DELETE', target: '/items', method: 'DELETE', status: 403 },
      { name: 'POST is allowed (only DELETE is excluded)', target: '/items', method: 'POST', status: 200 },
      { name: 'ipBlocks denies the listed source address', target: '/items', from: '127.61.1.66', status: 403 },
      { name: 'ipBlocks leaves other sources alone', target: '/items', from: '127.61.1.67', status: 200 },
      { name: 'remoteIpBlocks reads x-forwarded-for', target: '/items', headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.7' }, status: 403 },
      { name: 'remoteIpBlocks: only the last x-forwarded-for hop counts', target: '/items', headers: { 'x-forwarded-for': '203.0.113.7, 198.51.100.1' }, status: 200 },
      { name: 'a `when` condition on a request header', target: '/items', headers: { 'x-block': 'yes' }, status: 403 },
      { name: 'the `when` value must match', target: '/items', headers: { 'x-block': 'no' }, status: 200 },
      { name: 'AUDIT never denies', target: '/audited', status: 200 },
    ];
    for (const c of ruleCases) {
      it(c.name, async () => {
        const r = await rawHttp(port('api'), c.from ?? FROM, c.target, { method: c.method, headers: c.headers });
        expect(r.status, r.raw).to.equal(c.status);
      });
    }

    it('AUDIT publishes a `logged` event for the matching request and `not_logged` otherwise', async () => {
      events.length = 0;
      await rawHttp(port('api'), FROM, '/audited');
      await rawHttp(port('api'), FROM, '/items');
      const logs = events.filter((e) => e.action === 'LOG');
      expect(logs.map((e) => e.result)).to.deep.equal(['logged', 'not_logged']);
      expect(logs[0]!.policy).to.equal('ns[rules]-policy[api-audit]-rule[0]');
    });
  });

  describe(`path normalization: ${SAME_AS_ADMIN.length} encodings of /admin get /admin's decision`, () => {
    it('has at least 50 encodings', () => expect(SAME_AS_ADMIN.length).to.be.at.least(50));
    for (const target of SAME_AS_ADMIN) {
      it(`${JSON.stringify(target)} → 403, never reaching the application`, async () => {
        const before = appSeen.length;
        const r = await rawHttp(port('paths'), FROM, target);
        expect(r.status, r.raw).to.equal(403);
        expect(r.body).to.equal('RBAC: access denied');
        expect(appSeen.slice(before)).to.deep.equal([]);
      });
    }
    for (const c of DIFFERENT) {
      it(`${JSON.stringify(c.target)} is a different resource (${c.why}): 200, the application sees ${c.seen}`, async () => {
        const before = appSeen.length;
        const r = await rawHttp(port('paths'), FROM, c.target);
        expect(r.status, r.raw).to.equal(200);
        expect(appSeen.slice(before).map((s) => s.url)).to.deep.equal([c.seen]);
      });
    }
    for (const c of REJECTED) {
      it(`${JSON.stringify(c.target)} is refused with 400 (${c.why})`, async () => {
        const before = appSeen.length;
        const r = await rawHttp(port('paths'), FROM, c.target);
        expect(r.status, r.raw).to.equal(400);
        expect(appSeen.slice(before)).to.deep.equal([]);
      });
    }

    it('HTTP/2 (h2c) requests are normalized the same way', async () => {
      const session = http2.connect(`http://127.0.0.1:${port('paths')}`, { localAddress: FROM } as http2.SecureClientSessionOptions);
      try {
        const get = (path: string) => new Promise<number>((resolve, reject) => {
          const req = session.request({ ':path': path, ':authority': 'web' });
          req.on('response', (h) => { resolve(Number(h[':status'])); req.resume(); });
          req.on('error', reject);
          req.end();
        });
        const before = appSeen.length;
        for (const p of ['/admin', '//admin', '/%61dmin', '/public/../admin', '/public\\..\\admin', '/\\admin']) expect(await get(p), p).to.equal(403);
        // nghttp2 itself refuses a :path that does not start with '/' (stream reset, PROTOCOL_ERROR).
        const refused = await get('\\admin').then((s) => `status ${s}`, (e: Error & { code?: string }) => e.code);
        expect(refused).to.equal('ERR_HTTP2_STREAM_ERROR');
        expect(appSeen.length).to.equal(before);
        expect(await get('/public/./a/../b')).to.equal(200);
        expect(appSeen.slice(before).map((s) => s.url)).to.deep.equal(['/public/b']);
      } finally {
        session.close();
      }
    });
  });

  describe('network RBAC on a TCP port', () => {
    it('an ALLOW policy lets the listed principal through and closes every other connection (counted)', async () => {
      events.length = 0;
      expect(await tcpExchange(port('db'), FROM_TCP, 'hello', { ca, cert: cert('tcp', 'reader') })).to.equal('hello');
      expect(await tcpExchange(port('db'), FROM_TCP, 'hello', { ca, cert: cert('tcp', 'writer') })).to.equal('');
      expect(await tcpExchange(port('db'), FROM_TCP, 'hello')).to.equal('');
      const tcp = events.filter((e) => e.protocol === 'tcp');
      expect(tcp.map((e) => e.result)).to.deep.equal(['allowed', 'denied', 'denied']);
      expect(tcp[1]).to.deep.include({ enforcedDenial: true, sourcePrincipal: spiffe('tcp', 'writer'), statPrefix: 'tcp.' });
    });
  });
});
