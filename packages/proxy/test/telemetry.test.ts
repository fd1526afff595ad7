/**
 * Telemetry units: access log formatting (Envoy command operators, Istio's JSON and TEXT formats), the buffered
 * asynchronous file sink, trace context propagation (W3C and B3), the Zipkin reporter's batching and drop
 * counting, and metric labels (app/version from the workload's labels, cluster stats, denials).
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvoyResourceError, istioAccessLogFormat, parseFormatString } from '@trellis/api';
import { silentLogger } from '../src/index.js';
import { AccessLogSink, AccessLogger, formatLine, renderText } from '../src/telemetry/access-log.js';
import { authzChannel } from '../src/authz/events.js';
import { jwtDenialChannel } from '../src/jwt/events.js';
import { type AccessLogFacts, requestChannel } from '../src/telemetry/events.js';
import { ProxyMetrics, appAndVersion } from '../src/telemetry/metrics.js';
import { IdGenerator, extract, inject, parseTraceparent } from '../src/telemetry/trace-context.js';
import { type ZipkinSpan, ZipkinReporter, parseCollectorAddress } from '../src/telemetry/zipkin.js';

const FACTS: AccessLogFacts = {
  startTimeMs: Date.UTC(2026, 10, 22, 9, 0, 0, 123), protocol: 'HTTP/1.1', method: 'GET', path: '/reviews/1?x=1', authority: 'reviews:9080',
  responseCode: 503, responseCodeDetails: 'no_healthy_upstream', responseFlags: 'UH', connectionTerminationDetails: null,
  bytesReceived: 12, bytesSent: 19, durationMs: 7.8, upstreamServiceTimeMs: null, upstreamHost: '10.0.0.7:9080',
  upstreamCluster: 'outbound|9080||reviews.default.svc.cluster.local', upstreamLocalAddress: null, upstreamTransportFailureReason: null,
  downstreamLocalAddress: '10.96.0.9:9080', downstreamRemoteAddress: '10.0.0.1:40000', downstreamPeerPrincipal: 'spiffe://cluster.local/ns/default/sa/productpage',
  upstreamPeerPrincipal: null, requestedServerName: null, routeName: 'default', traceId: null,
  requestHeader: (n) => ({ 'user-agent': 'curl/8', 'x-request-id': 'rid-1', 'x-forwarded-for': null } as Record<string, string | null>)[n] ?? null,
  responseHeader: () => null, accessLog: [],
};

describe('proxy telemetry: access log format', () => {
  it('parses Envoy format strings, with %% and :N truncation, and rejects malformed ones with a path', () => {
    expect(parseFormatString('a%%b %REQ(X-A?X-B):3% %DURATION%', 'p')).to.deep.equal([
      { kind: 'text', text: 'a%b ' }, { kind: 'op', op: 'REQ', arg: 'x-a', alt: 'x-b', maxLength: 3 }, { kind: 'text', text: ' ' },
      { kind: 'op', op: 'DURATION', arg: null, alt: null, maxLength: null },
    ]);
    expect(() => parseFormatString('%START_TIME', 'log_format.text_format')).to.throw(EnvoyResourceError, 'log_format.text_format: unterminated');
    expect(() => parseFormatString('%REQ()%', 'f')).to.throw(EnvoyResourceError, 'needs a header name');
    expect(() => parseFormatString('%bad op%', 'f')).to.throw(EnvoyResourceError, 'invalid command operator');
  });

  it('Istio JSON: typed values, null for what is missing, the peer identity', () => {
    const line = formatLine(istioAccessLogFormat('JSON'), FACTS, []);
    expect(line.endsWith('\n')).to.equal(true);
    const j = JSON.parse(line) as Record<string, unknown>;
    expect(j).to.include({
      start_time: '2026-11-22T09:00:00.123Z', method: 'GET', path: '/reviews/1?x=1', protocol: 'HTTP/1.1', response_code: 503, response_flags: 'UH',
      response_code_details: 'no_healthy_upstream', bytes_received: 12, bytes_sent: 19, duration: 7, upstream_service_time: null, user_agent: 'curl/8',
      request_id: 'rid-1', authority: 'reviews:9080', upstream_host: '10.0.0.7:9080', upstream_cluster: 'outbound|9080||reviews.default.svc.cluster.local',
      downstream_local_address: '10.96.0.9:9080', downstream_remote_address: '10.0.0.1:40000', route_name: 'default',
      downstream_peer_principal: 'spiffe://cluster.local/ns/default/sa/productpage', x_forwarded_for: null, requested_server_name: null,
    });
  });

  it('Istio TEXT: `-` for what is missing', () => {
    const line = formatLine(istioAccessLogFormat('TEXT'), FACTS, []);
    expect(line).to.equal('[2026-11-22T09:00:00.123Z] "GET /reviews/1?x=1 HTTP/1.1" 503 UH no_healthy_upstream - "-" 12 19 7 - "-" "curl/8" "rid-1" "reviews:9080" "10.0.0.7:9080" '
      + 'outbound|9080||reviews.default.svc.cluster.local - 10.96.0.9:9080 10.0.0.1:40000 - default\n');
    expect(renderText(parseFormatString('%REQ(USER-AGENT):4% %PROTOCOL% %UNKNOWN_OP%', 'f'), { ...FACTS, protocol: null })).to.equal('curl - -');
  });
});

describe('proxy telemetry: buffered access log file', () => {
  let dir = '';
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trellis-e-log-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('appends lines in order, asynchronously', async () => {
    let dropped = 0;
    const sink = new AccessLogSink(join(dir, 'a.log'), { logger: silentLogger(), onDrop: (n) => { dropped += n; } });
    for (let i = 0; i < 500; i++) sink.write(`line ${i}\n`);
    await sink.close();
    const lines = readFileSync(join(dir, 'a.log'), 'utf8').trim().split('\n');
    expect(lines).to.have.length(500);
    expect(lines[499]).to.equal('line 499');
    expect(dropped).to.equal(0);
  });

  it('writes a batch by itself after the flush interval (no flush call)', async () => {
    const sink = new AccessLogSink(join(dir, 'i.log'), { logger: silentLogger(), flushIntervalMs: 5, onDrop: () => {} });
    try {
      sink.write('one\n');
      sink.write('two\n');
      for (let i = 0; i < 200 && !(readFileSync(join(dir, 'i.log'), { flag: 'a+' }).toString() === 'one\ntwo\n'); i++) await new Promise((r) => setTimeout(r, 10));
      expect(readFileSync(join(dir, 'i.log'), 'utf8')).to.equal('one\ntwo\n');
    } finally { await sink.close(); }
  });

  it('drops and counts lines past the buffer bound; an unopenable file drops everything', async () => {
    let dropped = 0;
    const sink = new AccessLogSink(join(dir, 'b.log'), { logger: silentLogger(), maxBufferBytes: 100, onDrop: (n) => { dropped += n; } });
    for (let i = 0; i < 50; i++) sink.write('0123456789012345678\n');
    await sink.close();
    const written = readFileSync(join(dir, 'b.log'), 'utf8').split('\n').length - 1;
    expect(written + dropped).to.equal(50);
    expect(dropped).to.be.greaterThan(0);
    let lost = 0;
    const bad = new AccessLogSink(join(dir, 'no/such/dir/c.log'), { logger: silentLogger(), onDrop: (n) => { lost += n; } });
    bad.write('x\n');
    await bad.flush();
    bad.write('y\n');
    await bad.close();
    expect(lost).to.equal(2);
  });
});

describe('proxy telemetry: access logger (control plane config vs --access-log)', () => {
  let dir = '';
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trellis-e-logger-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const publish = (instance: string, path: string) => requestChannel.publish({
    instance, reporter: 'source', protocol: 'http', cluster: 'c', responseCode: 200, grpcStatus: null, responseFlags: '-', durationMs: 1, requestBytes: 0,
    responseBytes: 0, sourcePrincipal: null, destinationPrincipal: null, mtls: false, destinationWorkload: null, destinationWorkloadNamespace: null,
    accessLog: [{ name: 'cp', path, format: istioAccessLogFormat('TEXT') }], detail: () => FACTS,
  });

  it('follows the HCM config; --access-log FILE replaces it (Istio JSON); --access-log off silences it', async () => {
    const cp = join(dir, 'cp.log');
    const flag = join(dir, 'flag.log');
    const follow = new AccessLogger({ instance: 'l1', logger: silentLogger() });
    const override = new AccessLogger({ instance: 'l2', logger: silentLogger(), override: { name: 'flag', path: flag, format: istioAccessLogFormat('JSON') } });
    const off = new AccessLogger({ instance: 'l3', logger: silentLogger(), override: null });
    try {
      publish('l1', cp);
      publish('l2', cp);
      publish('l3', cp);
      publish('other', cp);
      await Promise.all([follow.flush(), override.flush(), off.flush()]);
      expect(readFileSync(cp, 'utf8').split('\n').filter(Boolean)).to.have.length(1);
      expect(readFileSync(cp, 'utf8')).to.match(/^\[2026-11-22T09:00:00.123Z\] "GET/);
      expect(JSON.parse(readFileSync(flag, 'utf8')).response_flags).to.equal('UH');
    } finally {
      await Promise.all([follow.close(), override.close(), off.close()]);
    }
  });
});

describe('proxy telemetry: trace context', () => {
  const tid = '4bf92f3577b34da6a3ce929d0e0e4736';
  it('reads W3C traceparent (and rejects invalid ones)', () => {
    expect(parseTraceparent(`00-${tid}-00f067aa0ba902b7-01`)).to.deep.equal({ traceId: tid, spanId: '00f067aa0ba902b7', sampled: true });
    expect(parseTraceparent(`00-${'0'.repeat(32)}-00f067aa0ba902b7-01`)).to.equal(null);
    expect(parseTraceparent(`ff-${tid}-00f067aa0ba902b7-01`)).to.equal(null);
    expect(parseTraceparent(`00-${tid}-00f067aa0ba902b7-01-extra`)).to.equal(null);
    expect(extract({ traceparent: `00-${tid}-00f067aa0ba902b7-00`, tracestate: 'a=b' })).to.include({ traceId: tid, spanId: '00f067aa0ba902b7', sampled: false, tracestate: 'a=b' });
  });

  it('reads B3 single and multi-header, and a bare sampling decision', () => {
    expect(extract({ b3: `${tid}-00f067aa0ba902b7-1-1111111111111111` })).to.include({ traceId: tid, spanId: '00f067aa0ba902b7', parentId: '1111111111111111', sampled: true, singleB3: true });
    expect(extract({ b3: '0' })).to.include({ traceId: '', sampled: false });
    expect(extract({ 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': '00f067aa0ba902b7', 'x-b3-flags': '1' })).to.include({ traceId: 'a3ce929d0e0e4736', sampled: true, debug: true });
    expect(extract({ 'x-b3-sampled': '0' })).to.include({ sampled: false, traceId: '' });
    expect(extract({})).to.equal(null);
    // traceparent wins over B3
    expect(extract({ traceparent: `00-${tid}-00f067aa0ba902b7-01`, 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': '1111111111111111' })?.spanId).to.equal('00f067aa0ba902b7');
  });

  it('writes both conventions for the next hop, rewriting b3 when it came that way', () => {
    const h: Record<string, string | string[]> = { b3: 'x', 'x-b3-flags': '1' };
    inject(h, { traceId: 'a3ce929d0e0e4736', spanId: '2222222222222222', parentId: '1111111111111111', sampled: true, debug: false, tracestate: 'k=v', singleB3: true });
    expect(h).to.deep.equal({
      traceparent: '00-0000000000000000a3ce929d0e0e4736-2222222222222222-01', tracestate: 'k=v', 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': '2222222222222222',
      'x-b3-parentspanid': '1111111111111111', 'x-b3-sampled': '1', b3: 'a3ce929d0e0e4736-2222222222222222-1-1111111111111111',
    });
    const ids = new IdGenerator();
    const seen = new Set(Array.from({ length: 1000 }, () => ids.spanId()));
    expect(seen.size).to.equal(1000);
    for (const id of seen) expect(id).to.match(/^[0-9a-f]{16}$/);
    expect(ids.traceId(true)).to.match(/^[0-9a-f]{32}$/);
  });
});

describe('proxy telemetry: Zipkin reporter', () => {
  const span = (i: number): ZipkinSpan => ({ traceId: 'a'.repeat(32), id: i.toString(16).padStart(16, '0'), name: 'x', kind: 'CLIENT', timestamp: 1, duration: 1, localEndpoint: { serviceName: 's' }, tags: {} });

  it('parses collector addresses', () => {
    expect(parseCollectorAddress('zipkin.istio-system:9411')).to.deep.equal({ host: 'zipkin.istio-system', port: 9411, path: '/api/v2/spans' });
    expect(parseCollectorAddress('[::1]:9411')?.host).to.equal('::1');
    expect(parseCollectorAddress('zipkin')).to.equal(null);
  });

  it('posts batches of JSON spans; drops past the queue bound and when the collector fails', async () => {
    const bodies: unknown[][] = [];
    let status = 202;
    const server = http.createServer((req, res) => {
      let b = '';
      req.on('data', (c: Buffer) => { b += c; });
      req.on('end', () => { expect(req.url).to.equal('/api/v2/spans'); bodies.push(JSON.parse(b) as unknown[]); res.writeHead(status); res.end(); });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const r = new ZipkinReporter({ target: { host: '127.0.0.1', port, path: '/api/v2/spans' }, logger: silentLogger(), batchSize: 10, maxQueue: 25, flushIntervalMs: 60_000 });
    try {
      for (let i = 0; i < 40; i++) r.report(span(i));
      await r.flush();
      expect(bodies.flat()).to.have.length(r.reported);
      expect(r.reported + r.dropped).to.equal(40);
      expect(bodies.every((b) => b.length <= 10)).to.equal(true);
      status = 500;
      r.report(span(99));
      await r.flush();
      expect(r.dropped).to.equal(41 - r.reported);
    } finally {
      await r.close();
      await new Promise((res) => server.close(res));
    }
  });
});

describe('proxy telemetry: metrics', () => {
  it('source_app/version come from --labels outbound, destination_app/version inbound', async () => {
    const m = new ProxyMetrics({ workload: 'productpage-v1', namespace: 'default', principal: 'spiffe://cluster.local/ns/default/sa/productpage', trustDomain: 'cluster.local', labels: { app: 'productpage', version: 'v1' } }, { instance: 'm1' });
    try {
      const base = { instance: 'm1', protocol: 'http', responseCode: 200, grpcStatus: null, responseFlags: '-', durationMs: 1, requestBytes: 0, responseBytes: 0, mtls: true, destinationWorkload: null, destinationWorkloadNamespace: null };
      requestChannel.publish({ ...base, reporter: 'source', cluster: 'outbound|9080||reviews.default.svc.cluster.local', sourcePrincipal: null, destinationPrincipal: 'spiffe://cluster.local/ns/default/sa/reviews' });
      requestChannel.publish({ ...base, reporter: 'destination', cluster: 'inbound|9080||', sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/gateway', destinationPrincipal: null });
      const authz = { instance: 'm1', reporter: 'destination', protocol: 'http', statPrefix: '', action: 'DENY', policy: 'ns[default]-policy[deny-admin]-rule[0]', sourcePrincipal: null, sourceIp: '10.0.0.1', destinationPort: 9080 };
      authzChannel.publish({ ...authz, shadow: false, result: 'denied', enforcedDenial: true });
      authzChannel.publish({ ...authz, shadow: true, result: 'denied', enforcedDenial: false });
      authzChannel.publish({ ...authz, shadow: false, result: 'allowed', enforcedDenial: false });
      jwtDenialChannel.publish({ instance: 'm1', direction: 'inbound', listener: 'virtualInbound', responseCode: 401, status: 'Jwt is expired', issuer: null, method: 'GET', path: '/', sourceIp: '10.0.0.1', sourcePrincipal: null });
      const text = await m.registry.metrics();
      expect(text).to.match(/istio_requests_total\{reporter="source",[^}]*source_app="productpage",source_version="v1"/);
      expect(text).to.match(/istio_requests_total\{reporter="destination",[^}]*destination_app="productpage",destination_version="v1"/);
      expect(text).to.match(/trellis_authorization_denials_total\{reporter="destination",filter="rbac",policy="ns\[default\]-policy\[deny-admin\]-rule\[0\]",reason="rbac_access_denied",shadow="false"\} 1/);
      expect(text).to.match(/trellis_authorization_denials_total\{[^}]*shadow="true"\} 1/);
      expect(text).to.match(/trellis_authorization_denials_total\{reporter="destination",filter="jwt_authn",policy="none",reason="Jwt is expired",shadow="false"\} 1/);
    } finally { m.close(); }
    expect(appAndVersion({ 'app.kubernetes.io/name': 'a', 'app.kubernetes.io/version': '2' })).to.deep.equal({ app: 'a', version: '2' });
  });

  it('cluster stats and outlier ejections at scrape time', async () => {
    let now = 1000;
    const hosts = [{ key: 'a:1', ejectedUntil: 0 }, { key: 'b:1', ejectedUntil: 0 }];
    const stats = { rqTotal: 10, rqActive: 1, rqError: 2, rqTimeout: 3, cxConnectFail: 4, overflow: 5, retries: 6 };
    const m = new ProxyMetrics({ workload: 'w', namespace: 'n', principal: 'p', trustDomain: 'td' }, { instance: 'm2', clusters: () => [['outbound|80||x', { stats, hosts: { all: hosts } }]], now: () => now });
    try {
      hosts[0]!.ejectedUntil = 5000;
      let text = await m.registry.metrics();
      expect(text).to.include('envoy_cluster_upstream_rq_retry{cluster_name="outbound|80||x"} 6');
      expect(text).to.include('envoy_cluster_upstream_rq_timeout{cluster_name="outbound|80||x"} 3');
      expect(text).to.include('envoy_cluster_outlier_detection_ejections_active{cluster_name="outbound|80||x"} 1');
      expect(text).to.include('envoy_cluster_outlier_detection_ejections_total{cluster_name="outbound|80||x"} 1');
      now = 6000;
      hosts[0]!.ejectedUntil = 9000;
      text = await m.registry.metrics();
      expect(text).to.include('envoy_cluster_outlier_detection_ejections_total{cluster_name="outbound|80||x"} 2');
    } finally { m.close(); }
    const outlier = { stats: { ejectionsTotal: 7, ejectionsConsecutive5xx: 5, ejectionsConsecutiveGateway: 1, ejectionsConsecutiveLocalOrigin: 1, ejectionsOverflow: 2 } };
    const m2 = new ProxyMetrics({ workload: 'w', namespace: 'n', principal: 'p', trustDomain: 'td' }, { instance: 'm3', clusters: () => [['c1', { stats, hosts: { all: hosts }, outlier }], ['c2', { stats, hosts: { all: [] }, outlier: null }]] });
    try {
      const text = await m2.registry.metrics();
      expect(text).to.include('envoy_cluster_outlier_detection_ejections_total{cluster_name="c1"} 7');
      expect(text).to.include('envoy_cluster_outlier_detection_ejections_total{cluster_name="c2"} 0');
      expect(text).to.include('envoy_cluster_outlier_detection_ejections_enforced_consecutive_5xx{cluster_name="c1"} 5');
      expect(text).to.include('envoy_cluster_outlier_detection_ejections_overflow{cluster_name="c1"} 2');
      expect(text).not.to.include('envoy_cluster_outlier_detection_ejections_overflow{cluster_name="c2"}');
    } finally { m2.close(); }
  });
});
