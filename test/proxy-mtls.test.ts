/**
 * Two proxies with mTLS between them, the way a mesh runs them: client → client-side proxy (explicit outbound
 * listener, RDS route, EDS cluster with UpstreamTlsContext) → mTLS → server-side proxy (inbound listener with
 * DownstreamTlsContext, inline routes, STATIC inbound clusters) → application. Config from fake ADS servers, keys
 * from fake SDS servers; every socket real, every port chosen by the OS.
 */
import { expect } from 'chai';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { TYPE_URL } from '@trellis/api';
import { issueTestCert, makeTestCa, type TestCa } from '@trellis/testing';
import {
  HTTP2, cla, downstreamTls, edsCluster, hcm, listener, spiffe, startProxy, staticCluster, until, upstreamTls, type RunningProxy,
} from './proxy-fixtures.js';

const ECHO_DEF = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
};
const EchoClient = grpc.makeGenericClientConstructor(ECHO_DEF, 'Echo');

function httpGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host: 'httpbin', ...headers }, agent: keepAlive }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 16 });

const serverInboundRoutes = (appPort: number) => ({
  name: 'inbound|8080||',
  virtual_hosts: [{ name: 'inbound', domains: ['*'], routes: [
    { match: { prefix: '/', headers: [{ name: 'content-type', string_match: { prefix: 'application/grpc' } }] }, route: { cluster: 'inbound|9090||', timeout: { seconds: 0 } } },
    { match: { prefix: '/' }, route: { cluster: 'inbound|8080||' } },
  ] }],
  request_headers_to_add: [],
  _app: appPort,
});

describe('proxy: client proxy → mTLS → server proxy (HTTP/1.1, HTTP/2, gRPC)', function () {
  this.timeout(30_000);
  let ca: TestCa;
  let app: http.Server;
  let grpcApp: grpc.Server;
  let appPort = 0;
  let grpcPort = 0;
  let server: RunningProxy;
  let client: RunningProxy;
  const seen: http.IncomingHttpHeaders[] = [];

  const serverListener = (permissive: boolean) => {
    const rc = serverInboundRoutes(appPort);
    delete (rc as Record<string, unknown>)._app;
    // As Istio generates them: mesh HTTP recognized by the istio-* ALPN the client proxy offers; other TLS is TCP.
    const chains: Record<string, unknown>[] = [
      { name: 'mtls-http', filter_chain_match: { transport_protocol: 'tls', application_protocols: ['istio-http/1.0', 'istio-http/1.1', 'istio-h2'] }, transport_socket: downstreamTls(true), filters: [hcm({ routeConfig: rc })] },
      { name: 'mtls-tcp', filter_chain_match: { transport_protocol: 'tls' }, transport_socket: downstreamTls(true), filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 't', cluster: 'inbound|8080||' } }] },
    ];
    if (permissive) chains.push({ name: 'plaintext', filter_chain_match: { transport_protocol: 'raw_buffer' }, filters: [hcm({ routeConfig: rc })] });
    return listener('inbound', chains, { traffic_direction: 'INBOUND' });
  };

  const clientResources = (inboundPort: number, expectSa = 'httpbin') => ({
    listener: [listener('outbound', [{ filters: [hcm({ rds: 'http.80' })] }], { traffic_direction: 'OUTBOUND' })],
    route: [{ name: 'http.80', virtual_hosts: [
      { name: 'httpbin', domains: ['httpbin', 'httpbin.default.svc.cluster.local'], routes: [{ match: { prefix: '/' }, route: { cluster: 'outbound|80||httpbin.default.svc.cluster.local', timeout: { seconds: 5 } } }] },
      { name: 'httpbin-h1', domains: ['httpbin-h1'], routes: [{ match: { prefix: '/' }, route: { cluster: 'outbound|81||httpbin-h1.default.svc.cluster.local' } }] },
    ] }],
    cluster: [
      edsCluster('outbound|80||httpbin.default.svc.cluster.local', { transport_socket: upstreamTls(spiffe('default', expectSa), ['istio-peer-exchange', 'istio']), ...HTTP2 }),
      edsCluster('outbound|81||httpbin-h1.default.svc.cluster.local', { transport_socket: upstreamTls(spiffe('default', expectSa), ['istio-peer-exchange', 'istio']) }),
    ],
    endpoint: [cla('outbound|80||httpbin.default.svc.cluster.local', [inboundPort]), cla('outbound|81||httpbin-h1.default.svc.cluster.local', [inboundPort])],
  });

  before(async () => {
    ca = makeTestCa();
    app = http.createServer((req, res) => {
      seen.push(req.headers);
      if (req.url?.startsWith('/slow')) { setTimeout(() => { res.end('slow'); }, 300); return; }
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json', 'x-app': 'yes' }); res.end(JSON.stringify({ method: req.method, url: req.url, body, headers: req.headers })); });
    });
    // A WebSocket-like upgrade: 101, then echo every byte prefixed with the caller's identity header.
    app.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${String(req.headers.upgrade)}\r\n\r\n`);
      socket.write(`peer=${String(req.headers['x-forwarded-client-cert'])};`);
      socket.pipe(socket);
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    appPort = (app.address() as AddressInfo).port;
    grpcApp = new grpc.Server();
    grpcApp.addService(ECHO_DEF, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const text = call.request.toString();
        if (text === 'missing') { cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' }); return; }
        if (text === 'slow') { setTimeout(() => cb(null, Buffer.from('late')), 2000); return; }
        cb(null, Buffer.from(`echo:${text}:${String(call.metadata.get('x-forwarded-client-cert')[0] ?? '')}`));
      },
    });
    grpcPort = await new Promise<number>((res, rej) => grpcApp.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    server = await startProxy({ ca, sa: 'httpbin', workload: 'httpbin', resources: {
      listener: [serverListener(false)],
      cluster: [staticCluster('inbound|8080||', [appPort]), staticCluster('inbound|9090||', [grpcPort], HTTP2)],
    } });
    client = await startProxy({ ca, sa: 'sleep', workload: 'sleep', resources: clientResources(server.port('inbound')) });
  });

  after(async () => {
    keepAlive.destroy();
    await client?.stop();
    await server?.stop();
    grpcApp?.forceShutdown();
    app?.closeAllConnections();
    await new Promise<void>((r) => app?.close(() => r()));
  });

  it('HTTP/1.1 through both proxies over mTLS (HTTP/2 between the proxies): identity and request id reach the app', async () => {
    const r = await httpGet(client.port('outbound'), '/get?x=1', { 'x-custom': 'a', connection: 'keep-alive, x-hop', 'x-hop': 'drop me' });
    expect(r.status).to.equal(200);
    const body = JSON.parse(r.body) as { url: string; headers: Record<string, string> };
    expect(body.url).to.equal('/get?x=1');
    expect(body.headers['x-forwarded-client-cert']).to.equal(`URI=${spiffe('default', 'sleep')}`);
    expect(body.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/);
    expect(body.headers['x-custom']).to.equal('a');
    expect(body.headers).to.not.have.property('x-hop');
    expect(r.headers['x-app']).to.equal('yes');
  });

  it('HTTP/1.1 over an HTTP/1.1 mTLS upstream pool', async () => {
    const r = await httpGet(client.port('outbound'), '/h1', { host: 'httpbin-h1' });
    expect(r.status).to.equal(200);
    expect((JSON.parse(r.body) as { headers: Record<string, string> }).headers['x-forwarded-client-cert']).to.equal(`URI=${spiffe('default', 'sleep')}`);
  });

  it('POST bodies pass through', async () => {
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: client.port('outbound'), method: 'POST', path: '/post', headers: { host: 'httpbin', 'content-type': 'text/plain' } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end('hello body');
    });
    expect(r.status).to.equal(200);
    expect((JSON.parse(r.body) as { body: string }).body).to.equal('hello body');
  });

  it('HTTP/2 (h2c, prior knowledge) from the client', async () => {
    const session = http2.connect(`http://127.0.0.1:${client.port('outbound')}`);
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = session.request({ ':path': '/h2', ':authority': 'httpbin' });
        let status = 0;
        let body = '';
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', (c: Buffer) => (body += c));
        s.on('end', () => resolve({ status, body }));
        s.on('error', reject);
        s.end();
      });
      expect(status).to.equal(200);
      expect((JSON.parse(body) as { url: string }).url).to.equal('/h2');
    } finally {
      session.close();
    }
  });

  it('gRPC end to end: unary, error status with message from trailers, deadline', async () => {
    const c = new EchoClient(`127.0.0.1:${client.port('outbound')}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'httpbin' });
    const call = (text: string, deadlineMs = 5000) => new Promise<Buffer>((resolve, reject) =>
      (c as unknown as { Echo: (req: Buffer, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void })
        .Echo(Buffer.from(text), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, r) => (e ? reject(e) : resolve(r!))));
    try {
      expect((await call('hi')).toString()).to.equal(`echo:hi:URI=${spiffe('default', 'sleep')}`);
      const err = await call('missing').then(() => null, (e: grpc.ServiceError) => e);
      expect(err?.code).to.equal(grpc.status.NOT_FOUND);
      expect(err?.details).to.equal('no such thing');
      const late = await call('slow', 300).then(() => null, (e: grpc.ServiceError) => e);
      expect(late?.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
    } finally {
      c.close();
    }
  });

  it('WebSocket upgrade through both proxies: 101, then bytes both ways over the mTLS hop', async () => {
    for (const host of ['httpbin', 'httpbin-h1']) {
      const got = await new Promise<string>((resolve, reject) => {
        const s = net.connect(client.port('outbound'), '127.0.0.1', () => {
          s.write(`GET /ws HTTP/1.1\r\nhost: ${host}\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
        });
        let out = '';
        s.on('data', (d) => {
          out += d;
          if (out.includes('peer=') && !out.includes('ping')) s.write('ping');
          if (out.endsWith('ping')) s.end();
        });
        s.on('close', () => resolve(out));
        s.on('error', reject);
      });
      expect(got.startsWith('HTTP/1.1 101 Switching Protocols')).to.equal(true, got);
      expect(got).to.contain(`peer=URI=${spiffe('default', 'sleep')};ping`);
    }
  });

  it('publishes Istio metrics: destination reporter with mutual_tls and the peer principal; source reporter on the client', async () => {
    await httpGet(client.port('outbound'), '/metrics-check');
    const text = await (await fetch(`http://127.0.0.1:${server.proxy.prometheusPort}/stats/prometheus`)).text();
    const line = text.split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes('reporter="destination"') && l.includes('response_code="200"'));
    expect(line).to.be.a('string');
    expect(line).to.contain(`source_principal="${spiffe('default', 'sleep')}"`);
    expect(line).to.contain('connection_security_policy="mutual_tls"');
    expect(line).to.contain('destination_workload="httpbin"');
    const ctext = await (await fetch(`http://127.0.0.1:${client.proxy.prometheusPort}/stats/prometheus`)).text();
    const cline = ctext.split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes('reporter="source"'));
    expect(cline).to.contain('destination_service="httpbin.default.svc.cluster.local"');
    expect(cline).to.contain('destination_service_name="httpbin"');
    expect(cline).to.contain('source_workload="sleep"');
    expect(ctext).to.contain('istio_request_duration_milliseconds_bucket');
  });

  it('refuses an upstream whose SPIFFE id is not the one the cluster expects (503 UF)', async () => {
    const wrong = clientResources(server.port('inbound'), 'someone-else');
    client.ads.set(TYPE_URL.cluster, wrong.cluster);
    await until(() => client.proxy.clusters.get('outbound|81||httpbin-h1.default.svc.cluster.local')?.config.tls?.matchSubjectAltNames[0].match.value === spiffe('default', 'someone-else'));
    const r = await httpGet(client.port('outbound'), '/x', { host: 'httpbin-h1' });
    expect(r.status).to.equal(503);
    client.ads.set(TYPE_URL.cluster, clientResources(server.port('inbound')).cluster);
    await until(() => client.proxy.clusters.get('outbound|81||httpbin-h1.default.svc.cluster.local')?.config.tls?.matchSubjectAltNames[0].match.value === spiffe('default', 'httpbin'));
    await until(async () => (await httpGet(client.port('outbound'), '/x', { host: 'httpbin-h1' })).status === 200);
  });

  it('a NACKed resource leaves traffic unaffected', async () => {
    const good = clientResources(server.port('inbound'));
    const bad = structuredClone(good.cluster);
    (bad[0] as Record<string, unknown>).lb_policy = 'MAGLEV';
    client.ads.set(TYPE_URL.cluster, bad);
    const nack = await client.ads.waitFor((r) => r.typeUrl === TYPE_URL.cluster && r.errorDetail !== null);
    expect(nack.errorDetail!.message).to.contain('lb_policy: unsupported value MAGLEV');
    const r = await httpGet(client.port('outbound'), '/after-nack');
    expect(r.status).to.equal(200);
    client.ads.set(TYPE_URL.cluster, good.cluster);
    await client.ads.waitFor((x) => x.typeUrl === TYPE_URL.cluster && x.errorDetail === null && x.versionInfo === String(Number(nack.versionInfo) + 2));
  });

  it('STRICT refuses plaintext; PERMISSIVE accepts plaintext and mTLS on one port', async () => {
    const port = server.port('inbound');
    const plaintext = () => new Promise<number | 'closed'>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/plain', headers: { host: 'x' }, agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode!)); });
      req.on('error', () => resolve('closed'));
      req.end();
    });
    expect(await plaintext()).to.equal('closed');
    server.ads.set(TYPE_URL.listener, [serverListener(true)]);
    await until(() => server.proxy.store.listeners().get('inbound')!.filterChains.length === 3);
    expect(server.port('inbound')).to.equal(port);
    expect(await plaintext()).to.equal(200);
    expect((await httpGet(client.port('outbound'), '/still-mtls')).status).to.equal(200);
    expect(seen.at(-1)!['x-forwarded-client-cert']).to.equal(`URI=${spiffe('default', 'sleep')}`);
    server.ads.set(TYPE_URL.listener, [serverListener(false)]);
    await until(() => server.proxy.store.listeners().get('inbound')!.filterChains.length === 2);
    expect(await plaintext()).to.equal('closed');
  });

  it('a certificate rotation over SDS mid-load drops no request and applies to new connections', async () => {
    const before = client.proxy.tlsContexts.get(client.proxy.clusters.get('outbound|81||httpbin-h1.default.svc.cluster.local')!.config.tls!)!.version;
    let failures = 0;
    let ok = 0;
    let stop = false;
    const worker = async (host: string) => {
      while (!stop) {
        const r = await httpGet(client.port('outbound'), '/load', { host }).catch(() => ({ status: 0 }));
        if (r.status === 200) ok += 1; else failures += 1;
      }
    };
    const load = Promise.all([worker('httpbin'), worker('httpbin'), worker('httpbin-h1'), worker('httpbin-h1')]);
    await until(() => ok > 20);
    client.sds.setCertificate('default', issueTestCert(ca, spiffe('default', 'sleep')));
    server.sds.setCertificate('default', issueTestCert(ca, spiffe('default', 'httpbin')));
    await until(() => client.proxy.tlsContexts.get(client.proxy.clusters.get('outbound|81||httpbin-h1.default.svc.cluster.local')!.config.tls!)!.version !== before);
    const at = ok;
    await until(() => ok > at + 40);
    stop = true;
    await load;
    expect(failures).to.equal(0);
  });

  it('readiness on the health port and admin endpoints', async () => {
    const ready = await fetch(`http://127.0.0.1:${client.proxy.healthPort}/healthz/ready`);
    expect(ready.status).to.equal(200);
    const clusters = await (await fetch(`http://127.0.0.1:${client.proxy.adminPort}/clusters`)).text();
    expect(clusters).to.contain(`outbound|80||httpbin.default.svc.cluster.local::127.0.0.1:${server.port('inbound')}::health_flags::healthy`);
    const dump = await (await fetch(`http://127.0.0.1:${client.proxy.adminPort}/config_dump`)).json() as { configs: { resources: { name: string }[] }[] };
    expect(dump.configs[0].resources.map((r) => r.name)).to.deep.equal(['outbound']);
    expect(JSON.stringify(dump)).to.not.contain('PRIVATE KEY');
    const lg = await (await fetch(`http://127.0.0.1:${client.proxy.adminPort}/logging?level=debug`)).text();
    expect(lg).to.contain('debug');
  });
});

describe('proxy: readiness before config', () => {
  it('answers 503 on /healthz/ready until listeners, routes, clusters, endpoints and secrets are in', async () => {
    const ca = makeTestCa();
    const p = await startProxy({ ca, sa: 'a', workload: 'a', waitReady: false, resources: {
      listener: [listener('l', [{ filters: [hcm({ rds: 'r' })] }])],
      cluster: [edsCluster('c')],
    } });
    try {
      await until(() => p.proxy.store.get('cluster').received);
      const r = await fetch(`http://127.0.0.1:${p.proxy.healthPort}/healthz/ready`);
      expect(r.status).to.equal(503);
      expect(await r.text()).to.contain('RDS r');
      p.ads.set(TYPE_URL.route, [{ name: 'r', virtual_hosts: [] }]);
      p.ads.set(TYPE_URL.endpoint, [cla('c', [1])]);
      await until(async () => (await fetch(`http://127.0.0.1:${p.proxy.healthPort}/healthz/ready`)).status === 200);
      void net;
    } finally {
      await p.stop();
    }
  });
});
