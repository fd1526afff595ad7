/**
 * Routing and load balancing through one proxy, table-driven: an explicit HTTP listener with an RDS route table,
 * five backends that say who they are, and EDS clusters over them. Also TCP proxying, request smuggling shapes,
 * and the outbound capture listener's passthrough / REGISTRY_ONLY behaviour (original destination injected).
 */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { TYPE_URL } from '@trellis/api';
import { makeTestCa } from '@trellis/testing';
import { cla, edsCluster, endpointsOf, hcm, listener, startProxy, staticCluster, tcpProxy, until, type RunningProxy } from './proxy-fixtures.js';

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string; backend: string | null; seenPath: string | null; seenHeaders: Record<string, string> }

function request(port: number, path: string, headers: Record<string, string> = {}, method = 'GET', localAddress?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false, localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let j: { backend?: string; path?: string; headers?: Record<string, string> } = {};
        try { j = JSON.parse(body) as typeof j; } catch { /* local reply */ }
        resolve({ status: res.statusCode!, headers: res.headers, body, backend: j.backend ?? null, seenPath: j.path ?? null, seenHeaders: j.headers ?? {} });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function rawExchange(port: number, payload: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    s.write(payload);
    setTimeout(() => s.destroy(), 1500);
  });
}

const names = ['a', 'b', 'c', 'd', 'e'] as const;

describe('proxy: routing, load balancing, TCP, smuggling, passthrough', function () {
  this.timeout(30_000);
  const backends: http.Server[] = [];
  const port: Record<string, number> = {};
  let tcpEcho: net.Server;
  let tcpPort = 0;
  let p: RunningProxy;

  const lbCluster = (name: string, policy: string, members: readonly string[], extra: Record<string, unknown> = {}) => edsCluster(name, { lb_policy: policy, ...extra });
  const routeTable = () => ({
    name: 'http.80',
    response_headers_to_add: [{ header: { key: 'x-rc', value: 'rc' } }],
    virtual_hosts: [
      { name: 'exact', domains: ['svc.example', 'svc.example:8080'], request_headers_to_add: [{ header: { key: 'x-vh', value: 'exact' } }], routes: [
        { match: { path: '/exact' }, route: { cluster: 'one-a' } },
        { match: { prefix: '/api', headers: [{ name: ':method', string_match: { exact: 'POST' } }] }, route: { cluster: 'one-b' } },
        { match: { prefix: '/api', headers: [{ name: 'x-user', string_match: { exact: 'jason' } }] }, route: { cluster: 'one-c' } },
        { match: { prefix: '/api', query_parameters: [{ name: 'v', string_match: { exact: '2' } }] }, route: { cluster: 'one-d' } },
        { match: { safe_regex: { regex: '/items/[0-9]+' } }, route: { cluster: 'one-e' } },
        { match: { prefix: '/api' }, route: { cluster: 'one-a', prefix_rewrite: '/v1', host_rewrite_literal: 'internal.example' },
          request_headers_to_remove: ['x-secret'], request_headers_to_add: [{ header: { key: 'x-route', value: 'api' } }],
          response_headers_to_add: [{ header: { key: 'x-resp', value: 'added' } }], response_headers_to_remove: ['x-backend-internal'] },
        { match: { prefix: '/split' }, route: { weighted_clusters: { clusters: [{ name: 'one-a', weight: { value: 80 } }, { name: 'one-b', weight: { value: 20 } }] } } },
        { match: { path: '/old' }, redirect: { path_redirect: '/new', response_code: 'FOUND' } },
        { match: { prefix: '/secure' }, redirect: { https_redirect: true } },
        { match: { path: '/health' }, direct_response: { status: 200, body: { inline_string: 'fine' } } },
        { match: { prefix: '/down' }, route: { cluster: 'down' } },
        { match: { prefix: '/nocluster' }, route: { cluster: 'does-not-exist' } },
        { match: { prefix: '/slow' }, route: { cluster: 'one-e' } },
        { match: { prefix: '/outlier' }, route: { cluster: 'outlier' } },
        { match: { prefix: '/breaker' }, route: { cluster: 'breaker' } },
      ] },
      { name: 'wild', domains: ['*.wild.example'], routes: [{ match: { prefix: '/' }, route: { cluster: 'one-b' } }] },
      { name: 'lb', domains: ['lb'], routes: [
        { match: { prefix: '/rr' }, route: { cluster: 'rr' } },
        { match: { prefix: '/lr' }, route: { cluster: 'lr' } },
        { match: { prefix: '/random' }, route: { cluster: 'random' } },
        { match: { prefix: '/hash-header' }, route: { cluster: 'ring', hash_policy: [{ header: { header_name: 'x-user' } }] } },
        { match: { prefix: '/hash-cookie' }, route: { cluster: 'ring', hash_policy: [{ cookie: { name: 'session' } }] } },
        { match: { prefix: '/hash-ip' }, route: { cluster: 'ring', hash_policy: [{ connection_properties: { source_ip: true } }] } },
        { match: { prefix: '/failover' }, route: { cluster: 'prio' } },
        { match: { prefix: '/weighted' }, route: { cluster: 'weighted' } },
      ] },
    ],
  });

  const endpoints = () => [
    ...names.map((n) => cla(`one-${n}`, [port[n]])),
    cla('down', []),
    cla('rr', [port.a, port.b, port.c]),
    cla('outlier', [port.a, port.bad]),
    cla('breaker', [port.e]),
    cla('lr', [port.a, port.b, port.c]),
    cla('random', [port.a, port.b, port.c]),
    cla('ring', [port.a, port.b, port.c, port.d, port.e]),
    { cluster_name: 'prio', endpoints: [
      { priority: 0, lb_endpoints: [endpointsOf(port.a, '127.0.0.1', { health_status: 'UNHEALTHY' })] },
      { priority: 1, lb_endpoints: [endpointsOf(port.b)] },
    ] },
    { cluster_name: 'weighted', endpoints: [{ lb_endpoints: [endpointsOf(port.a, '127.0.0.1', { load_balancing_weight: { value: 3 } }), endpointsOf(port.b)] }] },
  ];

  before(async () => {
    for (const n of names) {
      const s = http.createServer((req, res) => {
        if (req.url?.endsWith('/slow')) { setTimeout(() => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ backend: n, path: req.url, headers: req.headers })); }, 300); return; }
        res.writeHead(200, { 'content-type': 'application/json', 'x-backend-internal': 'x' });
        res.end(JSON.stringify({ backend: n, path: req.url, headers: req.headers }));
      });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      port[n] = (s.address() as AddressInfo).port;
      backends.push(s);
    }
    const bad = http.createServer((_req, res) => { res.writeHead(500, { 'content-type': 'application/json' }); res.end(JSON.stringify({ backend: 'bad' })); });
    await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
    port.bad = (bad.address() as AddressInfo).port;
    backends.push(bad);
    tcpEcho = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => tcpEcho.listen(0, '127.0.0.1', r));
    tcpPort = (tcpEcho.address() as AddressInfo).port;
    p = await startProxy({ ca: makeTestCa(), sa: 'client', workload: 'client', resources: {
      listener: [
        listener('http', [{ filters: [hcm({ rds: 'http.80' })] }]),
        listener('tcp', [{ filters: [tcpProxy('tcp-echo')] }], { listener_filters: [] }),
        {
          name: 'virtualOutbound', address: { socket_address: { address: '0.0.0.0', port_value: 15001 } }, use_original_dst: { value: true }, traffic_direction: 'OUTBOUND',
          filter_chains: [{ name: 'PassthroughFilterChain', filters: [tcpProxy('PassthroughCluster')] }],
        },
      ],
      route: [routeTable()],
      cluster: [
        ...names.map((n) => edsCluster(`one-${n}`)), edsCluster('down'),
        lbCluster('rr', 'ROUND_ROBIN', []), lbCluster('lr', 'LEAST_REQUEST', []), lbCluster('random', 'RANDOM', []),
        lbCluster('ring', 'RING_HASH', []), lbCluster('prio', 'ROUND_ROBIN', []), lbCluster('weighted', 'ROUND_ROBIN', []),
        staticCluster('tcp-echo', [tcpPort]),
        edsCluster('outlier', { outlier_detection: { consecutive_5xx: { value: 2 }, base_ejection_time: { seconds: 30 }, max_ejection_percent: { value: 50 } } }),
        edsCluster('breaker', { circuit_breakers: { thresholds: [{ max_requests: { value: 1 } }] } }),
        { name: 'PassthroughCluster', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: { seconds: 1 } },
      ],
      endpoint: endpoints(),
    } });
  });

  after(async () => {
    await p?.stop();
    for (const s of backends) { s.closeAllConnections(); await new Promise<void>((r) => s.close(() => r())); }
    await new Promise<void>((r) => tcpEcho?.close(() => r()));
  });

  const routingCases: { name: string; path: string; headers?: Record<string, string>; method?: string; expect: Partial<{ status: number; backend: string; seenPath: string; location: string; body: string }>; check?: (r: Reply) => void }[] = [
    { name: 'exact path', path: '/exact', headers: { host: 'svc.example' }, expect: { backend: 'a', seenPath: '/exact' } },
    { name: 'authority with port', path: '/exact', headers: { host: 'svc.example:8080' }, expect: { backend: 'a' } },
    { name: 'authority with a port not listed falls back to the bare host', path: '/exact', headers: { host: 'svc.example:9999' }, expect: { backend: 'a' } },
    { name: 'wildcard suffix domain', path: '/', headers: { host: 'x.wild.example' }, expect: { backend: 'b' } },
    { name: 'method match (POST)', path: '/api/x', method: 'POST', headers: { host: 'svc.example', 'content-length': '0' }, expect: { backend: 'b' } },
    { name: 'header match', path: '/api/x', headers: { host: 'svc.example', 'x-user': 'jason' }, expect: { backend: 'c' } },
    { name: 'query parameter match', path: '/api/x?v=2', headers: { host: 'svc.example' }, expect: { backend: 'd', seenPath: '/api/x?v=2' } },
    { name: 'regex match', path: '/items/42', headers: { host: 'svc.example' }, expect: { backend: 'e' } },
    { name: 'regex must match the whole path', path: '/items/42/x', headers: { host: 'svc.example' }, expect: { status: 404 } },
    {
      name: 'prefix rewrite, host rewrite, request/response header add/remove', path: '/api/list?q=1', headers: { host: 'svc.example', 'x-secret': 's' },
      expect: { backend: 'a', seenPath: '/v1/list?q=1' },
      check: (r) => {
        expect(r.seenHeaders.host).to.equal('internal.example');
        expect(r.seenHeaders).to.not.have.property('x-secret');
        expect(r.seenHeaders['x-route']).to.equal('api');
        expect(r.seenHeaders['x-vh']).to.equal('exact');
        expect(r.headers['x-resp']).to.equal('added');
        expect(r.headers['x-rc']).to.equal('rc');
        expect(r.headers).to.not.have.property('x-backend-internal');
      },
    },
    { name: 'redirect', path: '/old?a=1', headers: { host: 'svc.example' }, expect: { status: 302, location: 'http://svc.example/new?a=1' } },
    { name: 'https redirect', path: '/secure/x', headers: { host: 'svc.example' }, expect: { status: 301, location: 'https://svc.example/secure/x' } },
    { name: 'direct response', path: '/health', headers: { host: 'svc.example' }, expect: { status: 200, body: 'fine' } },
    { name: 'no route: 404 (NR)', path: '/nothing', headers: { host: 'svc.example' }, expect: { status: 404 } },
    { name: 'unknown authority: 404', path: '/', headers: { host: 'other.example' }, expect: { status: 404 } },
    { name: 'no healthy endpoint: 503 (UH)', path: '/down', headers: { host: 'svc.example' }, expect: { status: 503 }, check: (r) => expect(r.body).to.equal('no healthy upstream') },
    { name: 'unknown cluster: 503 (NC)', path: '/nocluster', headers: { host: 'svc.example' }, expect: { status: 503 } },
  ];

  for (const c of routingCases) {
    it(`routes: ${c.name}`, async () => {
      const r = await request(p.port('http'), c.path, c.headers, c.method);
      if (c.expect.status !== undefined) expect(r.status).to.equal(c.expect.status);
      else expect(r.status).to.equal(200);
      if (c.expect.backend) expect(r.backend).to.equal(c.expect.backend);
      if (c.expect.seenPath) expect(r.seenPath).to.equal(c.expect.seenPath);
      if (c.expect.location) expect(r.headers.location).to.equal(c.expect.location);
      if (c.expect.body !== undefined) expect(r.body).to.equal(c.expect.body);
      c.check?.(r);
    });
  }

  async function spread(path: string, n: number, headers: (i: number) => Record<string, string> = () => ({}), localAddress?: (i: number) => string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await request(p.port('http'), path, { host: 'lb', ...headers(i) }, 'GET', localAddress?.(i));
      expect(r.status).to.equal(200);
      counts[r.backend!] = (counts[r.backend!] ?? 0) + 1;
    }
    return counts;
  }

  const lbCases: { name: string; run: () => Promise<void> }[] = [
    { name: 'round robin visits every host equally', run: async () => void expect(await spread('/rr', 30)).to.deep.equal({ a: 10, b: 10, c: 10 }) },
    { name: 'weighted round robin follows endpoint weights (3:1)', run: async () => void expect(await spread('/weighted', 40)).to.deep.equal({ a: 30, b: 10 }) },
    { name: 'least request (P2C) uses every host', run: async () => void expect(Object.keys(await spread('/lr', 40)).sort()).to.deep.equal(['a', 'b', 'c']) },
    { name: 'random uses every host', run: async () => void expect(Object.keys(await spread('/random', 60)).sort()).to.deep.equal(['a', 'b', 'c']) },
    {
      name: 'ring hash on a header: same key, same host; many keys spread', run: async () => {
        expect(Object.keys(await spread('/hash-header', 10, () => ({ 'x-user': 'alice' })))).to.have.length(1);
        expect(Object.keys(await spread('/hash-header', 60, (i) => ({ 'x-user': `user-${i}` }))).length).to.be.greaterThan(2);
      },
    },
    {
      name: 'ring hash on a cookie', run: async () => {
        expect(Object.keys(await spread('/hash-cookie', 10, () => ({ cookie: 'a=1; session=s-42' })))).to.have.length(1);
        expect(Object.keys(await spread('/hash-cookie', 60, (i) => ({ cookie: `session=s-${i}` }))).length).to.be.greaterThan(2);
      },
    },
    {
      name: 'ring hash on the source IP', run: async () => {
        expect(Object.keys(await spread('/hash-ip', 10, () => ({}), () => '127.0.0.5'))).to.have.length(1);
        expect(Object.keys(await spread('/hash-ip', 60, () => ({}), (i) => `127.0.${i}.9`)).length).to.be.greaterThan(2);
      },
    },
    { name: 'priority failover: unhealthy priority 0 sends everything to priority 1', run: async () => void expect(await spread('/failover', 10)).to.deep.equal({ b: 10 }) },
    { name: 'weighted clusters split traffic (80/20)', run: async () => {
      const counts: Record<string, number> = {};
      for (let i = 0; i < 200; i++) { const r = await request(p.port('http'), '/split', { host: 'svc.example' }); counts[r.backend!] = (counts[r.backend!] ?? 0) + 1; }
      expect(counts.a).to.be.greaterThan(counts.b);
      expect(counts.b).to.be.greaterThan(0);
    } },
  ];
  for (const c of lbCases) it(`load balancing: ${c.name}`, c.run);

  it('outlier detection ejects a host after consecutive 5xx (others keep serving)', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 12; i++) seen.push((await request(p.port('http'), '/outlier', { host: 'svc.example' })).backend!);
    expect(seen.filter((b) => b === 'bad')).to.have.length(2);
    expect(seen.slice(-6)).to.deep.equal(['a', 'a', 'a', 'a', 'a', 'a']);
    const clusters = await (await fetch(`http://127.0.0.1:${p.proxy.adminPort}/clusters`)).text();
    expect(clusters).to.contain(`outlier::127.0.0.1:${port.bad}::health_flags::healthy/failed_outlier_check`);
  });

  it('circuit breaker: requests over max_requests get 503 (UO)', async () => {
    const first = request(p.port('http'), '/breaker/slow', { host: 'svc.example' });
    await new Promise((r) => setTimeout(r, 100));
    const over = await request(p.port('http'), '/breaker/x', { host: 'svc.example' });
    expect(over.status).to.equal(503);
    expect(over.body).to.equal('upstream overflow');
    expect((await first).status).to.equal(200);
    expect((await request(p.port('http'), '/breaker/x', { host: 'svc.example' })).status).to.equal(200);
  });

  it('failover returns to priority 0 when it becomes healthy again (EDS update)', async () => {
    const eps = endpoints().map((e) => (e.cluster_name === 'prio' ? { cluster_name: 'prio', endpoints: [{ priority: 0, lb_endpoints: [endpointsOf(port.a)] }, { priority: 1, lb_endpoints: [endpointsOf(port.b)] }] } : e));
    p.ads.set(TYPE_URL.endpoint, eps);
    await until(() => p.proxy.clusters.get('prio')!.hosts.all[0].healthy);
    expect(await spread('/failover', 5)).to.deep.equal({ a: 5 });
  });

  it('TCP proxying: bytes go both ways and istio_tcp_* counts them', async () => {
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(p.port('tcp'), '127.0.0.1', () => s.end('ping over tcp'));
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('close', () => resolve(out));
      s.on('error', reject);
    });
    expect(got).to.equal('ping over tcp');
    await until(async () => (await (await fetch(`http://127.0.0.1:${p.proxy.prometheusPort}/stats/prometheus`)).text()).includes('istio_tcp_connections_closed_total{'));
    const text = await (await fetch(`http://127.0.0.1:${p.proxy.prometheusPort}/stats/prometheus`)).text();
    expect(text).to.match(/istio_tcp_sent_bytes_total\{[^}]*destination_service="tcp-echo"[^}]*\} 13/);
    expect(text).to.match(/istio_tcp_connections_opened_total\{[^}]*\} 1/);
  });

  const smuggling: [string, string][] = [
    ['Content-Length with Transfer-Encoding', 'POST /exact HTTP/1.1\r\nHost: svc.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['obs-fold header continuation', 'GET /exact HTTP/1.1\r\nHost: svc.example\r\nX-Folded: a\r\n b\r\n\r\n'],
    ['bad chunk size', 'POST /exact HTTP/1.1\r\nHost: svc.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['duplicate, differing Content-Length', 'POST /exact HTTP/1.1\r\nHost: svc.example\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    ['Transfer-Encoding other than chunked last', 'POST /exact HTTP/1.1\r\nHost: svc.example\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
  ];
  for (const [what, payload] of smuggling) {
    it(`smuggling: ${what} → 400 and the connection closed (Node's llhttp parser)`, async () => {
      const out = await rawExchange(p.port('http'), payload);
      expect(out.startsWith('HTTP/1.1 400')).to.equal(true, out);
      expect(out).to.not.contain('"backend"');
    });
  }

  it('an upgrade request with no route gets 404 and the connection is closed', async () => {
    const out = await rawExchange(p.port('http'), 'GET /nothing HTTP/1.1\r\nHost: svc.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    expect(out.startsWith('HTTP/1.1 404')).to.equal(true, out);
  });

  it('outbound capture listener: ALLOW_ANY passes an unknown destination through to the original destination', async () => {
    // No iptables here: the original destination is read from the connection's own address (no conntrack entry),
    // so connecting to the capture port's address passes through to itself; instead inject it.
    (p.proxy.listeners as unknown as { o: { originalDst: () => { address: string; port: number } } }).o.originalDst = () => ({ address: '127.0.0.1', port: tcpPort });
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(p.port('virtualOutbound'), '127.0.0.1', () => s.end('to the original destination'));
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('close', () => resolve(out));
      s.on('error', reject);
    });
    expect(got).to.equal('to the original destination');
  });

  it('outbound capture listener: REGISTRY_ONLY (BlackHoleCluster) refuses cleanly', async () => {
    p.ads.set(TYPE_URL.cluster, [...(p.proxy.store.get('cluster').raw.values() as Iterable<Record<string, unknown>>)].filter((c) => c.name !== 'BlackHoleCluster').concat([{ name: 'BlackHoleCluster', type: 'STATIC', connect_timeout: { seconds: 1 }, load_assignment: { cluster_name: 'BlackHoleCluster' } }]));
    const raw = [...(p.proxy.store.get('listener').raw.values() as Iterable<Record<string, unknown>>)];
    const vo = raw.find((l) => l.name === 'virtualOutbound')!;
    const blackholed = { ...vo, filter_chains: [{ name: 'BlackHoleFilterChain', filters: [tcpProxy('BlackHoleCluster')] }] };
    p.ads.set(TYPE_URL.listener, raw.map((l) => (l.name === 'virtualOutbound' ? blackholed : l)));
    await until(() => p.proxy.store.listeners().get('virtualOutbound')!.filterChains[0].name === 'BlackHoleFilterChain');
    const out = await new Promise<string>((resolve) => {
      const s = net.connect(p.port('virtualOutbound'), '127.0.0.1', () => s.write('hello?'));
      let o = '';
      s.on('data', (d) => (o += d));
      s.on('close', () => resolve(o));
      s.on('error', () => resolve(o));
    });
    expect(out).to.equal('');
  });

  it('drain (as on SIGTERM): stops accepting, finishes the request in flight with connection: close, readiness 503', async () => {
    const inflight = request(p.port('http'), '/slow', { host: 'svc.example' });
    await new Promise((r) => setTimeout(r, 100));
    const portBefore = p.port('http');
    p.proxy.drain();
    const r = await inflight;
    expect(r.status).to.equal(200);
    expect(r.headers.connection).to.equal('close');
    const refused = await new Promise<string>((resolve) => { const s = net.connect(portBefore, '127.0.0.1'); s.on('connect', () => { s.destroy(); resolve('connected'); }); s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error')); });
    expect(refused).to.equal('ECONNREFUSED');
    const ready = await fetch(`http://127.0.0.1:${p.proxy.healthPort}/healthz/ready`);
    expect(ready.status).to.equal(503);
    expect(await ready.text()).to.contain('draining');
  });
});
