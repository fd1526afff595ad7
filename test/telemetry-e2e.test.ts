/**
 * Telemetry end to end (issue 6 item 8): trellis-control (a real process, config directory with a MeshConfig)
 * serving two real proxies (client "productpage" → server "reviews", mTLS between them; in-process, certificates
 * from a fake SDS) and one trellis-proxy binary (an ingress gateway started with --access-log, --labels, --zipkin).
 *
 *   client ──► proxy A (outbound, 127.0.0.3) ══mTLS══► proxy B (inbound, 127.0.0.2:<app port>) ──► app (127.0.0.1)
 *   client ──► proxy A ──► TCP echo server (db, plaintext)
 *   client ──► trellis-proxy --mode gateway ──► app
 *
 * Checks: access logs off by default; MeshConfig accessLogFile/JSON turns them on for HTTP and TCP with Envoy's
 * fields (flags, upstream host, peer identity, bytes, a connect failure, an AuthorizationPolicy denial);
 * `--access-log` overrides the file; W3C and B3 trace headers in, both out; spans with the right parent/child
 * relations at a fake Zipkin; sampling 0 → no spans; `--labels` app/version in istio_requests_total; retry and
 * denial counters; promtool accepts /stats/prometheus.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { HttpConnectionManager } from '@trellis/api';
import { Proxy, nodeIdentity, silentLogger } from '@trellis/proxy';
import { FakeSdsServer, type TestCa, issueTestCert, makeTestCa } from '@trellis/testing';
import { CONTROL_BIN, ROOT, start, stop, type Proc } from './processes.js';

const PROXY_BIN = join(ROOT, 'packages/proxy/bin/trellis-proxy.js');
const REVIEWS = 'reviews.default.svc.cluster.local';
const DB_VIP = '240.240.10.10';
const spiffe = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;

interface Span { traceId: string; id: string; parentId?: string; kind: string; name: string; localEndpoint: { serviceName: string }; tags: Record<string, string> }
interface Seen { url: string; headers: http.IncomingHttpHeaders }

async function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((r) => server.listen(0, host, r));
  return (server.address() as AddressInfo).port;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  const p = await listen(s);
  await new Promise((r) => s.close(r));
  return p;
}

async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One HTTP/1.1 request to `port` (the proxy's outbound listener) as if captured on its way to `host`. */
function request(port: number, host: string, path: string, headers: Record<string, string> = {}, bind = '127.0.0.3'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: bind, port, path, headers: { host, 'user-agent': 'telemetry-e2e', ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function hcms(p: Proxy): HttpConnectionManager[] {
  return [...p.store.listeners().values()].flatMap((l) => [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])])
    .map((c) => c.terminal).filter((t): t is HttpConnectionManager => t.kind === 'http');
}

function promtool(text: string): { ok: boolean; problems: string[] } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  // Exit 3 = lint findings only; anything else but 0 is a parse error.
  const problems = `${r.stdout}${r.stderr}`.split('\n').filter(Boolean);
  return { ok: r.status === 0 || r.status === 3, problems };
}

/**
 * Lint findings that are deliberate: Istio's metric names (`_milliseconds`), Envoy's counter names (no `_total`),
 * prom-client's Node.js defaults. Anything else is a real finding.
 */
const ACCEPTED_LINT = /^(istio_request_duration_milliseconds use base unit|envoy_cluster_\w+ counter metrics should have "_total" suffix|nodejs_\w+ non-counter metrics should not have "_total" suffix|process_\w+)/;

describe('telemetry end to end: access logs, tracing and metrics through trellis-control and real proxies', function () {
  this.timeout(90_000);
  let dir = '';
  let control: Proc | null = null;
  let gateway: Proc | null = null;
  const proxies: Proxy[] = [];
  const sdss: FakeSdsServer[] = [];
  const servers: net.Server[] = [];
  const seen: Seen[] = [];
  const spans: Span[] = [];
  let appPort = 0;
  let tcpPort = 0;
  let zipkinPort = 0;
  let gatewayPort = 0;
  let deadPort = 0;
  let a: Proxy;
  let b: Proxy;
  let aPort = 0;
  let aDst = { address: '240.240.0.1', port: 9080 };
  let ca: TestCa;

  const meshConfig = (sampling: number | null) => `apiVersion: trellis.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: default}
spec:
  accessLogFile: ${join(dir, 'access.log')}
  accessLogEncoding: JSON
${sampling === null ? '' : `  defaultConfig:
    tracing:
      sampling: ${sampling}
      zipkin: {address: "127.0.0.1:${zipkinPort}"}
`}`;

  async function startProxy(o: { name: string; sa: string; ip: string; labels: Record<string, string>; inbound: number; originalDst: () => { address: string; port: number }; xds: string }): Promise<Proxy> {
    const sds = await new FakeSdsServer().start();
    sdss.push(sds);
    sds.setCertificate('default', issueTestCert(ca, spiffe(o.sa)));
    sds.setTrustBundle('ROOTCA', ca.certPem);
    const p = new Proxy({
      node: nodeIdentity({ mode: 'sidecar', ip: o.ip, workloadName: o.name, namespace: 'default', serviceAccount: o.sa, labels: o.labels, clusterId: 'Kubernetes', network: '' }),
      xds: { target: o.xds, credentials: grpc.credentials.createInsecure() }, sdsSocket: sds.socketPath, logger: silentLogger(),
      ports: { outbound: 0, inbound: o.inbound, admin: 0, prometheus: 0, health: 0 },
      bindAddress: o.ip, adminAddress: '127.0.0.1', statusAddress: '127.0.0.1',
      namespace: 'default', serviceAccount: o.sa, workloadName: o.name, originalDst: o.originalDst,
      tracing: { reporter: { flushIntervalMs: 50 } },
    });
    proxies.push(p);
    await p.start();
    await p.whenReady();
    return p;
  }

  before(async function () {
    if (spawnSync('promtool', ['--version']).status !== 0) throw new Error('promtool is not installed (Debian package prometheus)');
    dir = mkdtempSync(join(tmpdir(), 'trellis-e-telemetry-'));
    ca = makeTestCa();
    const app = http.createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('reviews v2 says hi\n');
    });
    const echo = net.createServer((s) => s.pipe(s));
    const zipkin = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c; });
      req.on('end', () => {
        if (req.method === 'POST' && req.url === '/api/v2/spans') spans.push(...(JSON.parse(body) as Span[]));
        res.writeHead(202);
        res.end();
      });
    });
    servers.push(app, echo, zipkin);
    appPort = await listen(app);
    tcpPort = await listen(echo);
    zipkinPort = await listen(zipkin);
    gatewayPort = await freePort();
    deadPort = await freePort();
    const config = join(dir, 'config');
    mkdirSync(config);
    writeFileSync(join(config, 'mesh.yaml'), `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [${REVIEWS}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec:
  address: 127.0.0.2
  labels: {app: reviews, version: v2}
  serviceAccount: reviews
  ports: {http: ${appPort}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  addresses: [${DB_VIP}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7000, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: ${tcpPort}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${appPort}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dead, namespace: default}
spec:
  hosts: [dead.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${deadPort}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{to: [{operation: {paths: [/admin*]}}]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: ${gatewayPort}, name: http, protocol: HTTP}, hosts: ['*']}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress, namespace: default}
spec:
  hosts: ['*']
  gateways: [ingress]
  http: [{route: [{destination: {host: ratings.default.svc.cluster.local, port: {number: 9080}}}]}]
`);
    control = start(CONTROL_BIN, [
      '--config-dir', config, '--state-dir', join(dir, 'control-state'),
      '--listen-xds', '127.0.0.1:0', '--listen-xds-plaintext', '127.0.0.1:0', '--listen-http', '127.0.0.1:0',
    ]);
    const xds = await control.waitFor(/"listener":"xds-plaintext","address":"([^"]+)"/, 'the plaintext xDS listener');
    b = await startProxy({ name: 'reviews-v2', sa: 'reviews', ip: '127.0.0.2', labels: { app: 'reviews', version: 'v2' }, inbound: appPort, originalDst: () => ({ address: '127.0.0.2', port: appPort }), xds });
    a = await startProxy({ name: 'productpage-v1', sa: 'productpage', ip: '127.0.0.3', labels: { app: 'productpage', version: 'v1' }, inbound: 0, originalDst: () => aDst, xds });
    aPort = a.listeners.port('virtualOutbound') ?? 0;
    expect(aPort).to.be.greaterThan(0);
  });

  after(async () => {
    if (gateway) await stop(gateway);
    for (const p of proxies) await p.close();
    for (const s of sdss) await s.stop();
    if (control) await stop(control);
    for (const s of servers) await new Promise((r) => s.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('off by default: no access_log or tracing on the HCMs, no trace headers added, no spans', async () => {
    // Through A to ratings (plaintext, straight to the app): A's pooled connection to B is made only after the
    // MeshConfig below, so B's inbound connection carries the HCM that has the access log and tracing.
    aDst = { address: '240.240.0.1', port: 9080 };
    const r = await request(aPort, 'ratings.default.svc.cluster.local:9080', '/ratings/0');
    expect(r.status, r.body).to.equal(200);
    expect(r.body).to.equal('reviews v2 says hi\n');
    for (const p of [a, b]) for (const h of hcms(p)) { expect(h.accessLog).to.deep.equal([]); expect(h.tracing).to.equal(null); }
    const last = seen[seen.length - 1]!;
    expect(last.headers.traceparent).to.equal(undefined);
    expect(last.headers['x-b3-traceid']).to.equal(undefined);
    await a.accessLog.flush();
    expect(existsSync(join(dir, 'access.log'))).to.equal(false);
  });

  it('MeshConfig access log (JSON) and tracing: W3C and B3 in, both out; spans with parent/child relations', async () => {
    writeFileSync(join(dir, 'config', 'meshconfig.yaml'), meshConfig(100));
    await until('the access log and tracing config on both proxies', () => [a, b].every((p) => hcms(p).length > 0 && hcms(p).every((h) => h.accessLog.length === 1 && h.tracing?.randomSampling === 100)));
    const tid = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    aDst = { address: '240.240.0.1', port: 9080 };
    const w3c = await request(aPort, `${REVIEWS}:9080`, '/reviews/1', { traceparent: `00-${tid}-${callerSpan}-01`, tracestate: 'vendor=x', 'x-request-id': 'rid-w3c' });
    expect(w3c.status).to.equal(200);
    const h1 = seen[seen.length - 1]!.headers;
    expect(h1['x-request-id']).to.equal('rid-w3c');
    const [, trace1, bSpan, flags1] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(\d\d)$/.exec(String(h1.traceparent)) ?? [];
    expect(trace1).to.equal(tid);
    expect(flags1).to.equal('01');
    expect(h1.tracestate).to.equal('vendor=x');
    expect(h1['x-b3-traceid']).to.equal(tid);
    expect(h1['x-b3-spanid']).to.equal(bSpan);
    expect(h1['x-b3-sampled']).to.equal('1');
    const aSpan = String(h1['x-b3-parentspanid']);

    const b3 = await request(aPort, `${REVIEWS}:9080`, '/reviews/2', { 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': '1111111111111111', 'x-b3-sampled': '1', 'x-request-id': 'rid-b3' });
    expect(b3.status).to.equal(200);
    const h2 = seen[seen.length - 1]!.headers;
    expect(h2['x-b3-traceid']).to.equal('a3ce929d0e0e4736');
    expect(String(h2.traceparent)).to.match(/^00-0000000000000000a3ce929d0e0e4736-[0-9a-f]{16}-01$/);

    const fresh = await request(aPort, `${REVIEWS}:9080`, '/reviews/3', { 'x-request-id': 'rid-new' });
    expect(fresh.status).to.equal(200);
    const h3 = seen[seen.length - 1]!.headers;
    expect(String(h3.traceparent)).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

    await Promise.all([a.tracer.flush(), b.tracer.flush()]);
    await until('six spans at Zipkin', () => spans.length >= 6);
    const ofTrace = (t: string) => spans.filter((s) => s.traceId === t);
    const t1 = ofTrace(tid);
    expect(t1.map((s) => s.kind).sort()).to.deep.equal(['CLIENT', 'SERVER']);
    const client = t1.find((s) => s.kind === 'CLIENT')!;
    const server = t1.find((s) => s.kind === 'SERVER')!;
    expect(client).to.include({ id: aSpan, parentId: callerSpan, name: `${REVIEWS}:9080/*` });
    expect(server).to.include({ id: bSpan, parentId: aSpan });
    expect(client.localEndpoint.serviceName).to.equal('productpage.default');
    expect(server.localEndpoint.serviceName).to.equal('reviews.default');
    expect(client.tags).to.include({ 'http.method': 'GET', 'http.status_code': '200', 'guid:x-request-id': 'rid-w3c', upstream_cluster: `outbound|9080||${REVIEWS}` });
    const t2 = ofTrace('a3ce929d0e0e4736');
    expect(t2.find((s) => s.kind === 'CLIENT')?.parentId).to.equal('1111111111111111');
    const t3 = ofTrace(String(h3['x-b3-traceid']));
    expect(t3).to.have.length(2);
    const root = t3.find((s) => s.kind === 'CLIENT')!;
    expect(root.parentId).to.equal(undefined);
    expect(t3.find((s) => s.kind === 'SERVER')?.parentId).to.equal(root.id);
  });

  it('access log lines for HTTP (both proxies, a connect failure, an authorization denial) and TCP, with Envoy\'s fields', async () => {
    aDst = { address: '240.240.0.1', port: 9080 };
    const denied = await request(aPort, `${REVIEWS}:9080`, '/admin/users', { 'x-request-id': 'rid-denied' });
    expect(denied.status).to.equal(403);
    const uf = await request(aPort, 'dead.default.svc.cluster.local:9080', '/x', { 'x-request-id': 'rid-uf' });
    expect(uf.status).to.equal(503);
    aDst = { address: DB_VIP, port: 7000 };
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.3', port: aPort }, () => s.write('ping'));
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (c: string) => { got += c; if (got === 'ping') s.end(); });
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    await a.accessLog.flush();
    expect(echoed).to.equal('ping');
    const lines = await until('the TCP access log line', async () => {
      await Promise.all([a.accessLog.flush(), b.accessLog.flush()]);
      const ls = readFileSync(join(dir, 'access.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      return ls.some((l) => String(l.upstream_cluster).includes('|7000|')) ? ls : undefined;
    });
    const outbound = lines.find((l) => l.request_id === 'rid-w3c' && String(l.upstream_cluster).startsWith('outbound|'))!;
    expect(outbound).to.include({
      method: 'GET', path: '/reviews/1', protocol: 'HTTP/1.1', response_code: 200, response_flags: '-', response_code_details: 'via_upstream',
      bytes_sent: 19, bytes_received: 0, user_agent: 'telemetry-e2e', authority: `${REVIEWS}:9080`, upstream_host: `127.0.0.2:${appPort}`,
      upstream_cluster: `outbound|9080||${REVIEWS}`, downstream_local_address: '240.240.0.1:9080', upstream_peer_principal: spiffe('reviews'),
      downstream_peer_principal: null,
    });
    expect(outbound.start_time).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(outbound.duration).to.be.a('number');
    expect(outbound.upstream_service_time).to.be.a('number');
    expect(String(outbound.downstream_remote_address)).to.match(/^127\.0\.0\.1:\d+$/);
    const inbound = lines.find((l) => l.request_id === 'rid-w3c' && String(l.upstream_cluster).startsWith('inbound|'))!;
    expect(inbound).to.include({
      response_code: 200, response_flags: '-', bytes_sent: 19, upstream_host: `127.0.0.1:${appPort}`, upstream_cluster: `inbound|${appPort}||`,
      downstream_peer_principal: spiffe('productpage'), downstream_local_address: `127.0.0.2:${appPort}`,
    });
    expect(String(inbound.requested_server_name)).to.equal(`outbound_.9080_._.${REVIEWS}`);
    const local = lines.find((l) => l.request_id === 'rid-uf')!;
    expect(String(local.response_flags).split(',')).to.include('UF');
    expect(local).to.include({ response_code: 503, upstream_host: `127.0.0.1:${deadPort}`, upstream_cluster: 'outbound|9080||dead.default.svc.cluster.local' });
    expect(String(local.response_code_details)).to.include('connection_failure');
    expect(String(local.upstream_transport_failure_reason)).to.match(/ECONNREFUSED/);
    // B's line (the server side denies before routing: no upstream cluster or host).
    const deny = lines.find((l) => l.request_id === 'rid-denied' && l.downstream_peer_principal === spiffe('productpage'))!;
    expect(deny).to.include({ response_code: 403, upstream_host: null, upstream_cluster: null, downstream_local_address: `127.0.0.2:${appPort}` });
    expect(String(deny.response_code_details)).to.match(/^rbac_access_denied/);
    const tcp = lines.find((l) => String(l.upstream_cluster) === 'outbound|7000||db.default.svc.cluster.local')!;
    expect(tcp).to.include({ response_code: 0, response_flags: '-', bytes_received: 4, bytes_sent: 4, upstream_host: `127.0.0.1:${tcpPort}`, protocol: null, method: null, downstream_local_address: `${DB_VIP}:7000` });
  });

  it('istio_requests_total carries the --labels app/version; promtool accepts /stats/prometheus', async () => {
    const scrape = async (p: Proxy) => (await fetch(`http://127.0.0.1:${p.prometheusPort}/stats/prometheus`)).text();
    const ta = await scrape(a);
    const tb = await scrape(b);
    expect(ta).to.match(/istio_requests_total\{reporter="source",source_workload="productpage-v1",[^}]*source_app="productpage",source_version="v1"[^}]*destination_service="reviews\.default\.svc\.cluster\.local"/);
    expect(tb).to.match(/trellis_authorization_denials_total\{reporter="destination",filter="rbac",policy="ns\[default\]-policy\[deny-admin\]-rule\[0\]",reason="rbac_access_denied",shadow="false"\} 1/);
    expect(tb).to.match(/istio_requests_total\{reporter="destination",[^}]*source_principal="spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage"[^}]*destination_app="reviews",destination_version="v2"[^}]*connection_security_policy="mutual_tls"/);
    expect(ta).to.include('envoy_cluster_upstream_rq_retry{cluster_name="outbound|9080||reviews.default.svc.cluster.local"}');
    expect(ta).to.include('envoy_cluster_outlier_detection_ejections_active{cluster_name="outbound|9080||reviews.default.svc.cluster.local"} 0');
    expect(ta).to.match(/trellis_tracing_spans_reported_total \d+/);
    // The UF request above was retried (Istio's default retry policy covers connect-failure).
    const retried = /envoy_cluster_upstream_rq_retry\{cluster_name="outbound\|9080\|\|dead\.default\.svc\.cluster\.local"\} (\d+)/.exec(ta);
    expect(Number(retried?.[1])).to.be.greaterThan(0);
    expect(ta).to.match(/trellis_upstream_retries_total\{cluster_name="outbound\|9080\|\|dead\.default\.svc\.cluster\.local",reason="[a-z-]+"\} [1-9]/);
    for (const text of [ta, tb]) {
      const r = promtool(text);
      expect(r.ok, r.problems.join('\n')).to.equal(true);
      expect(r.problems.filter((p) => !ACCEPTED_LINT.test(p))).to.deep.equal([]);
    }
  });

  it('sampling 0: requests without a decision make no spans, headers still propagate (sampled=0)', async () => {
    writeFileSync(join(dir, 'config', 'meshconfig.yaml'), meshConfig(0));
    await until('sampling 0 on both proxies', () => [a, b].every((p) => hcms(p).every((h) => h.tracing?.randomSampling === 0)));
    await Promise.all([a.tracer.flush(), b.tracer.flush()]);
    const before = spans.length;
    aDst = { address: '240.240.0.1', port: 9080 };
    for (let i = 0; i < 5; i++) expect((await request(aPort, `${REVIEWS}:9080`, `/unsampled/${i}`)).status).to.equal(200);
    await Promise.all([a.tracer.flush(), b.tracer.flush()]);
    expect(spans.length).to.equal(before);
    expect(String(seen[seen.length - 1]!.headers.traceparent)).to.match(/-00$/);
    expect(seen[seen.length - 1]!.headers['x-b3-sampled']).to.equal('0');
  });

  it('trellis-proxy --access-log /dev/stdout --labels --zipkin (a gateway): Istio JSON on its stdout, not in the MeshConfig file; labels in metrics; spans', async () => {
    const xds = await control!.waitFor(/"listener":"xds-plaintext","address":"([^"]+)"/, 'the plaintext xDS listener');
    gateway = start(PROXY_BIN, [
      '--mode', 'gateway', '--xds-address', xds, '--xds-plaintext', '--sds-socket', '', '--namespace', 'default', '--workload-name', 'ingress',
      '--labels', 'istio=ingressgateway,app=ingress,version=v9', '--ip', '127.0.0.1', '--concurrency', '1', '--drain-time', '0',
      '--admin-port', '0', '--prometheus-port', '0', '--health-port', '0',
      '--access-log', '/dev/stdout', '--trace-sampling', '100', '--zipkin', `127.0.0.1:${zipkinPort}`,
    ]);
    const prom = Number(await gateway.waitFor(/"prometheus":(\d+)/, 'the gateway start-up line'));
    await gateway.waitFor(/listener bound/, 'the gateway listener');
    const spansBefore = spans.length;
    await until('the gateway to route', async () => (await request(gatewayPort, 'anything.example', '/probe', {}, '127.0.0.1').catch(() => null))?.status === 200);
    const r = await request(gatewayPort, 'anything.example', '/via-gateway', { 'x-request-id': 'rid-gw' }, '127.0.0.1');
    expect(r.body).to.equal('reviews v2 says hi\n');
    const line = await until('the gateway access log line on its stdout', () => {
      const l = gateway!.output().split('\n').find((x) => x.includes('"request_id":"rid-gw"'));
      return l ? JSON.parse(l) as Record<string, unknown> : undefined;
    });
    expect(line).to.include({ method: 'GET', path: '/via-gateway', response_code: 200, upstream_host: `127.0.0.1:${appPort}`, upstream_cluster: 'outbound|9080||ratings.default.svc.cluster.local' });
    // The MeshConfig's file does not get the gateway's lines: the flag replaced it.
    expect(readFileSync(join(dir, 'access.log'), 'utf8')).not.to.include('rid-gw');
    const span = await until('the gateway span', () => spans.slice(spansBefore).find((s) => s.tags['guid:x-request-id'] === 'rid-gw'));
    expect(span.localEndpoint.serviceName).to.equal('ingress.default');
    const text = await (await fetch(`http://127.0.0.1:${prom}/stats/prometheus`)).text();
    expect(text).to.match(/istio_requests_total\{[^}]*source_app="ingress",source_version="v9"/);
    const lint = promtool(text);
    expect(lint.ok, lint.problems.join('\n')).to.equal(true);
    expect(lint.problems.filter((p) => !ACCEPTED_LINT.test(p))).to.deep.equal([]);
  });
});
