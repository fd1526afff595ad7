/**
 * The fault, CORS and mirror layers alone, with a stub `next`, a fake downstream response, an injected random
 * source and an injected timer (no sleeps). End-to-end behaviour is in test/policy-fault-mirror.test.ts.
 */
import { expect } from 'chai';
import diagnostics_channel from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { Pool } from 'undici';
import { EXT_TYPE_URL, type CorsPolicy, type HttpConnectionManager, type HttpFault, type Route, type VirtualHost } from '@trellis/api';
import type { HttpContext } from '../src/http/context.js';
import { corsLayer } from '../src/http/layers/cors.js';
import { faultLayer } from '../src/http/layers/fault.js';
import { mirrorLayer } from '../src/http/layers/mirror.js';
import { type ShadowRequest, ShadowSender, type ShadowTicket, shadowAuthority } from '../src/upstream/shadow.js';

class FakeRes extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  destroyed = false;
  writableEnded = false;
  head: Record<string, unknown> = {};
  trailers: Record<string, string> = {};
  writeHead(status: number, h: Record<string, unknown>) { this.statusCode = status; this.head = h; this.headersSent = true; return this; }
  addTrailers(t: Record<string, string>) { this.trailers = t; }
  end() { this.writableEnded = true; }
  close() { this.destroyed = true; this.emit('close'); }
}

const pct = (n: number) => ({ numerator: n, denominator: 100 as const });
const fault = (x: Partial<HttpFault>): HttpFault => ({ kind: 'http_fault', delay: null, abort: null, headers: [], upstreamCluster: null, maxActiveFaults: null, ...x });
const cors = (x: Partial<CorsPolicy>): CorsPolicy => ({
  kind: 'cors_policy', allowOrigins: [{ kind: 'exact', value: 'https://a.example', ignoreCase: false }, { kind: 'prefix', value: 'https://p.', ignoreCase: false }],
  allowMethods: 'GET,POST', allowHeaders: 'x-a', exposeHeaders: 'x-b', maxAge: '60', allowCredentials: true, filterEnabled: pct(100), shadowEnabled: null,
  forwardNotMatchingPreflights: true, allowPrivateNetworkAccess: false, ...x,
});

function ctxOf(o: { filters?: string[]; route?: Record<string, unknown>; vhost?: Record<string, unknown>; headers?: Record<string, string>; method?: string; h2?: boolean; req?: unknown }): HttpContext & { res: FakeRes } {
  const hcm = { kind: 'http', httpFilters: (o.filters ?? []).map((t) => ({ name: t === EXT_TYPE_URL.fault ? 'envoy.filters.http.fault' : 'envoy.filters.http.cors', type: t, config: null })) } as unknown as HttpConnectionManager;
  const route = { typedPerFilterConfig: o.route ?? {}, action: { kind: 'route', cluster: 'c', weightedClusters: null, requestMirrorPolicies: [], timeoutMs: 0 } } as unknown as Route;
  const vhost = { typedPerFilterConfig: o.vhost ?? {} } as unknown as VirtualHost;
  return {
    req: (o.req ?? { headers: {} }) as HttpContext['req'], res: new FakeRes() as unknown as HttpContext['res'] & FakeRes, h2: o.h2 ?? false, startNs: 0n,
    conn: { hcm } as HttpContext['conn'], method: o.method ?? 'GET', authority: 'svc:80', path: '/p', headers: { ...o.headers },
    routeConfig: null, vhost, route, clusterName: '', cluster: null, host: null, responseHeadersToAdd: [], responseHeadersToRemove: [], responseFlags: '-',
    upstreamPrincipal: null, requestBytes: 0, responseBytes: 0, grpcStatus: null, upgrade: null,
  } as unknown as HttpContext & { res: FakeRes };
}

/** A timer the test fires by hand. */
function manualTimers() {
  const pending: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  return {
    pending,
    setTimer: (fn: () => void, ms: number) => { const t = { fn, ms, cancelled: false }; pending.push(t); return { cancel: () => { t.cancelled = true; } }; },
    fire() { for (const t of pending.splice(0)) if (!t.cancelled) t.fn(); },
  };
}

const seq = (...xs: number[]) => { let i = 0; return () => xs[i++ % xs.length]!; };

describe('proxy: fault layer', () => {
  const F = EXT_TYPE_URL.fault;

  it('is a pass-through without the filter in the HCM, or without a fault for the route', () => {
    let calls = 0;
    const next = () => { calls += 1; };
    faultLayer()(next)(ctxOf({ route: { 'envoy.filters.http.fault': fault({ abort: { httpStatus: 500, grpcStatus: null, headerAbort: false, percentage: pct(100) } }) } }));
    faultLayer()(next)(ctxOf({ filters: [F] }));
    expect(calls).to.equal(2);
  });

  it('aborts with the HTTP status and flag FI; the route\'s config beats the virtual host\'s', () => {
    const c = ctxOf({ filters: [F],
      route: { 'envoy.filters.http.fault': fault({ abort: { httpStatus: 503, grpcStatus: null, headerAbort: false, percentage: pct(100) } }) },
      vhost: { 'envoy.filters.http.fault': fault({ abort: { httpStatus: 500, grpcStatus: null, headerAbort: false, percentage: pct(100) } }) } });
    faultLayer()(() => { throw new Error('must not continue'); })(c);
    expect(c.res.statusCode).to.equal(503);
    expect(c.responseFlags).to.equal('FI');
  });

  it('draws the percentage from the injected random source', () => {
    const results: string[] = [];
    const layer = faultLayer({ random: seq(0.1, 0.6, 0.29, 0.3) })(() => results.push('up'));
    for (let i = 0; i < 4; i++) {
      const c = ctxOf({ filters: [F], route: { 'envoy.filters.http.fault': fault({ abort: { httpStatus: 500, grpcStatus: null, headerAbort: false, percentage: pct(30) } }) } });
      layer(c);
      if (c.res.headersSent) results.push(String(c.res.statusCode));
    }
    expect(results).to.deep.equal(['500', 'up', '500', 'up']);
  });

  it('holds a delayed request until the timer fires (flag DI), then continues; then aborts when both are set', () => {
    const t = manualTimers();
    let up = 0;
    const c = ctxOf({ filters: [F], route: { f: 1, 'envoy.filters.http.fault': fault({ delay: { fixedDelayMs: 7000, percentage: pct(100) } }) } });
    faultLayer({ setTimer: t.setTimer })(() => { up += 1; })(c);
    expect([up, t.pending.map((p) => p.ms), c.responseFlags]).to.deep.equal([0, [7000], 'DI']);
    t.fire();
    expect(up).to.equal(1);
    const both = ctxOf({ filters: [F], route: { 'envoy.filters.http.fault': fault({ delay: { fixedDelayMs: 10, percentage: pct(100) }, abort: { httpStatus: 500, grpcStatus: null, headerAbort: false, percentage: pct(100) } }) } });
    faultLayer({ setTimer: t.setTimer })(() => { up += 1; })(both);
    expect(both.res.headersSent).to.equal(false);
    t.fire();
    expect([up, both.res.statusCode, both.responseFlags]).to.deep.equal([1, 500, 'DI,FI']);
  });

  it('cancels the delay when the client goes away: nothing continues', () => {
    const t = manualTimers();
    let up = 0;
    const c = ctxOf({ filters: [F], route: { 'envoy.filters.http.fault': fault({ delay: { fixedDelayMs: 5, percentage: pct(100) } }) } });
    faultLayer({ setTimer: t.setTimer })(() => { up += 1; })(c);
    c.res.close();
    expect(t.pending[0]!.cancelled).to.equal(true);
    t.fire();
    expect(up).to.equal(0);
  });

  it('gRPC abort: trailers-only on HTTP/2 (one HEADERS frame with END_STREAM), 200 for a non-gRPC request', () => {
    const g = fault({ abort: { httpStatus: null, grpcStatus: 14, headerAbort: false, percentage: pct(100) } });
    const responded: { h: Record<string, unknown>; o: unknown }[] = [];
    const stream = { headersSent: false, destroyed: false, respond: (h: Record<string, unknown>, o: unknown) => responded.push({ h, o }) };
    const c = ctxOf({ filters: [F], h2: true, headers: { 'content-type': 'application/grpc' }, route: { 'envoy.filters.http.fault': g } });
    (c.res as unknown as { stream: unknown }).stream = stream;
    faultLayer()(() => {})(c);
    expect(responded).to.deep.equal([{ h: { 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'fault%20filter%20abort', ':status': 200 }, o: { endStream: true } }]);
    expect([c.grpcStatus, c.responseFlags]).to.deep.equal(['14', 'FI']);
    const plain = ctxOf({ filters: [F], route: { 'envoy.filters.http.fault': g } });
    faultLayer()(() => {})(plain);
    expect(plain.res.statusCode).to.equal(200);
  });

  it('honours the filter\'s header matchers, upstream_cluster and max_active_faults', () => {
    const t = manualTimers();
    let up = 0;
    const layer = faultLayer({ setTimer: t.setTimer })(() => { up += 1; });
    const cfg = fault({ delay: { fixedDelayMs: 1, percentage: pct(100) }, headers: [{ name: 'end-user', match: { kind: 'exact', value: 'jason', ignoreCase: false }, present: true, invert: false }], maxActiveFaults: 1 });
    const run = (headers: Record<string, string>, f: HttpFault = cfg) => { const c = ctxOf({ filters: [F], headers, route: { 'envoy.filters.http.fault': f } }); layer(c); return c; };
    run({ 'end-user': 'alice' });
    expect([up, t.pending.length]).to.deep.equal([1, 0]);
    const held = run({ 'end-user': 'jason' });
    expect(t.pending.length).to.equal(1);
    run({ 'end-user': 'jason' }); // over max_active_faults: not delayed
    expect([up, t.pending.length]).to.deep.equal([2, 1]);
    held.res.close();
    run({ 'end-user': 'jason' });
    expect(t.pending.length).to.equal(2);
    run({}, fault({ abort: { httpStatus: 500, grpcStatus: null, headerAbort: false, percentage: pct(100) }, upstreamCluster: 'other' }));
    expect(up).to.equal(3);
  });

  it('header-controlled faults read x-envoy-fault-* headers, capped at the configured percentage', () => {
    const t = manualTimers();
    let up = 0;
    const layer = faultLayer({ setTimer: t.setTimer, random: () => 0.5 })(() => { up += 1; });
    const cfg = fault({ delay: { fixedDelayMs: null, percentage: pct(100) }, abort: { httpStatus: null, grpcStatus: null, headerAbort: true, percentage: pct(100) } });
    const c = ctxOf({ filters: [F], headers: { 'x-envoy-fault-delay-request': '250', 'x-envoy-fault-abort-request': '429' }, route: { 'envoy.filters.http.fault': cfg } });
    layer(c);
    expect(t.pending.map((p) => p.ms)).to.deep.equal([250]);
    t.fire();
    expect(c.res.statusCode).to.equal(429);
    const capped = ctxOf({ filters: [F], headers: { 'x-envoy-fault-abort-request': '429', 'x-envoy-fault-abort-request-percentage': '40' }, route: { 'envoy.filters.http.fault': cfg } });
    layer(capped);
    expect([capped.res.headersSent, up]).to.deep.equal([false, 1]);
  });
});

describe('proxy: CORS layer', () => {
  const C = EXT_TYPE_URL.cors;
  const run = (p: CorsPolicy, method: string, headers: Record<string, string>) => {
    const c = ctxOf({ filters: [C], method, headers, route: { 'envoy.filters.http.cors': p } });
    let up = false;
    corsLayer({ random: () => 0.5 })(() => { up = true; })(c);
    return { c, up };
  };
  const preflight = { 'access-control-request-method': 'POST' };

  it('answers an allowed preflight locally with the configured headers', () => {
    const { c, up } = run(cors({}), 'OPTIONS', { origin: 'https://p.x.example', ...preflight });
    expect(up).to.equal(false);
    expect(c.res.head).to.deep.equal({ 'access-control-allow-origin': 'https://p.x.example', 'access-control-allow-credentials': 'true', 'access-control-allow-methods': 'GET,POST',
      'access-control-allow-headers': 'x-a', 'access-control-max-age': '60', 'content-length': '0' });
  });

  it('forwards a preflight of an origin not allowed (or answers 200 without CORS headers when told not to)', () => {
    const fwd = run(cors({}), 'OPTIONS', { origin: 'https://b.example', ...preflight });
    expect([fwd.up, fwd.c.responseHeadersToAdd.length]).to.deep.equal([true, 0]);
    const local = run(cors({ forwardNotMatchingPreflights: false }), 'OPTIONS', { origin: 'https://b.example', ...preflight });
    expect([local.up, local.c.res.statusCode, local.c.res.head]).to.deep.equal([false, 200, { 'content-length': '0' }]);
  });

  it('an OPTIONS without access-control-request-method is an ordinary request', () => {
    const { c, up } = run(cors({}), 'OPTIONS', { origin: 'https://a.example' });
    expect(up).to.equal(true);
    expect(c.responseHeadersToAdd.map((h) => h.key)).to.include('access-control-allow-origin');
  });

  it('adds allow-origin, credentials and expose headers to actual requests from an allowed origin only', () => {
    const ok = run(cors({}), 'GET', { origin: 'https://a.example' });
    expect(ok.c.responseHeadersToAdd).to.deep.equal([
      { key: 'access-control-allow-origin', value: 'https://a.example', action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { key: 'access-control-allow-credentials', value: 'true', action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { key: 'access-control-expose-headers', value: 'x-b', action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    ]);
    for (const headers of [{ origin: 'https://a.example.evil' }, {}] as Record<string, string>[]) {
      const r = run(cors({}), 'GET', headers);
      expect([r.up, r.c.responseHeadersToAdd.length]).to.deep.equal([true, 0]);
    }
    const disabled = run(cors({ filterEnabled: pct(0) }), 'OPTIONS', { origin: 'https://a.example', ...preflight });
    expect([disabled.up, disabled.c.responseHeadersToAdd.length]).to.deep.equal([true, 0]);
  });
});

describe('proxy: mirror layer and shadow authority', () => {
  it('suffixes the host part with -shadow as Envoy does', () => {
    expect(['reviews', 'reviews:9080', 'reviews.default.svc.cluster.local:9080', '10.0.0.1:80', '[::1]:80', '[::1]'].map(shadowAuthority))
      .to.deep.equal(['reviews-shadow', 'reviews-shadow:9080', 'reviews.default.svc.cluster.local-shadow:9080', '10.0.0.1-shadow:80', '[::1]-shadow:80', '[::1]-shadow']);
  });

  /** A sender that records what it is asked to do. */
  function recordingSender(limit = Infinity) {
    const log: { cluster: string; req: ShadowRequest; result?: string }[] = [];
    let taken = 0;
    const sender = {
      reserve(cluster: string, req: ShadowRequest): ShadowTicket | null {
        if (taken >= limit) return null;
        taken += 1;
        const e: (typeof log)[number] = { cluster, req };
        log.push(e);
        return { maxBodyBytes: 8, send: (b) => { e.result = b === null ? 'no body' : `body ${b.toString()}`; }, cancel: (why) => { e.result = `cancel ${why}`; } };
      },
    } as unknown as ShadowSender;
    return { log, sender };
  }
  const withMirrors = (c: HttpContext, mirrors: { cluster: string; n: number }[]) => {
    (c.route as { action: unknown }).action = { kind: 'route', cluster: 'c', weightedClusters: null, timeoutMs: 0, requestMirrorPolicies: mirrors.map((m) => ({ cluster: m.cluster, fraction: pct(m.n), keepAuthority: false })) };
    return c;
  };

  it('copies a request without a body at once, for each policy drawn, and always continues', () => {
    const { log, sender } = recordingSender();
    let up = 0;
    const c = withMirrors(ctxOf({ headers: { 'x-a': '1' } }), [{ cluster: 'm1', n: 100 }, { cluster: 'm2', n: 30 }, { cluster: 'm3', n: 0 }]);
    mirrorLayer(sender, { random: () => 0.5 })(() => { up += 1; })(c);
    expect(up).to.equal(1);
    expect(log.map((e) => [e.cluster, e.req.authority, e.req.headers['x-a'], e.result])).to.deep.equal([['m1', 'svc:80', '1', 'no body']]);
  });

  it('copies the body the upstream reads, without starting the flow itself; cancels bodies over the bound or never read', async () => {
    const { log, sender } = recordingSender();
    const body = new PassThrough() as PassThrough & { headers: Record<string, string> };
    body.headers = { 'transfer-encoding': 'chunked' };
    const c = withMirrors(ctxOf({ req: body, method: 'POST' }), [{ cluster: 'm', n: 100 }]);
    let upstream = '';
    mirrorLayer(sender)(() => {})(c);
    body.write('ab');
    body.write('cd');
    expect(body.readableFlowing).to.equal(null);
    // The "upstream" starts reading later and still gets every chunk.
    body.on('data', (d: Buffer) => { upstream += d.toString(); });
    body.end('ef');
    await new Promise((r) => body.once('end', r));
    expect(upstream).to.equal('abcdef');
    expect(log[0]!.result).to.equal('body abcdef');

    const big = new PassThrough() as PassThrough & { headers: Record<string, string> };
    big.headers = { 'content-length': '100' };
    mirrorLayer(sender)(() => {})(withMirrors(ctxOf({ req: big }), [{ cluster: 'm', n: 100 }]));
    expect(log[1]!.result).to.equal('cancel body_too_large');

    const unread = new PassThrough() as PassThrough & { headers: Record<string, string> };
    unread.headers = { 'content-length': '2' };
    mirrorLayer(sender)(() => {})(withMirrors(ctxOf({ req: unread }), [{ cluster: 'm', n: 100 }]));
    unread.end('xy');
    unread.resume(); // drained without a 'data' listener, as node:http discards an unread body
    await new Promise((r) => unread.once('end', r));
    expect(log[2]!.result).to.equal('cancel body_lost');

    const chunkedBig = new PassThrough() as PassThrough & { headers: Record<string, string> };
    chunkedBig.headers = { 'transfer-encoding': 'chunked' };
    mirrorLayer(sender)(() => {})(withMirrors(ctxOf({ req: chunkedBig }), [{ cluster: 'm', n: 100 }]));
    let got = 0;
    chunkedBig.on('data', (d: Buffer) => { got += d.length; });
    chunkedBig.end('0123456789');
    await new Promise((r) => chunkedBig.once('end', r));
    expect([got, log[3]!.result]).to.deep.equal([10, 'cancel body_too_large']);
  });
});

describe('proxy: shadow sender', () => {
  /** A mirror cluster of one host whose upstream is given by the test. */
  function clustersWith(upstream: () => unknown, maxRequests = 1024) {
    const host = { key: 'h', address: { address: '127.0.0.1', port: 1 }, active: 0, total: 0 };
    const rt = {
      config: { name: 'mirror', type: 'EDS', http2: false, useDownstreamProtocol: false, circuitBreakers: { maxRequests } },
      stats: { rqTotal: 0, rqActive: 0, rqError: 0, rqTimeout: 0, overflow: 0 },
      hosts: { pick: () => host },
      upstream,
      tlsFor: () => null,
    };
    return { rt, clusters: { get: (n: string) => (n === 'mirror' ? rt : undefined) } as unknown as ConstructorParameters<typeof ShadowSender>[0] };
  }
  const req: ShadowRequest = { method: 'POST', path: '/x', authority: 'svc:80', headers: { 'x-a': '1', 'content-length': '5', expect: '100-continue' }, downstreamH2: false, timeoutMs: 0 };
  const outcomes: string[] = [];
  const onEvent = (m: unknown) => outcomes.push((m as { outcome: string }).outcome);
  beforeEach(() => { outcomes.length = 0; diagnostics_channel.subscribe('trellis:proxy:mirror', onEvent); });
  afterEach(() => diagnostics_channel.unsubscribe('trellis:proxy:mirror', onEvent));

  it('sends over HTTP/1.1 with the -shadow host, drops beyond the per-cluster bound, times out, and cancels on close', async () => {
    const held: http.ServerResponse[] = [];
    const heads: http.IncomingHttpHeaders[] = [];
    const server = http.createServer((rq, rs) => { heads.push(rq.headers); rq.resume(); rq.on('end', () => { if (rq.url === '/ok') { rs.end('fine'); } else held.push(rs); }); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 8 });
    const ac = new AbortController();
    const { rt, clusters } = clustersWith(() => ({ kind: 'h1', pool }));
    const sender = new ShadowSender(clusters, { now: Date.now, maxInflightPerCluster: 2, maxTimeoutMs: 60_000, signal: ac.signal });
    try {
      sender.reserve('mirror', { ...req, path: '/ok' })!.send(Buffer.from('hello'));
      await until(() => outcomes.includes('response'));
      expect(heads[0]).to.deep.include({ host: 'svc-shadow:80', 'x-a': '1', 'content-length': '5' });
      expect(heads[0]).to.not.have.property('expect');
      sender.reserve('mirror', { ...req, path: '/ok', keepAuthority: true })!.send(null);
      await until(() => outcomes.filter((o) => o === 'response').length === 2);
      expect(heads[1]!.host).to.equal('svc:80');
      outcomes.splice(0);
      expect(sender.reserve('nope', req)).to.equal(null);
      const a = sender.reserve('mirror', req)!;
      const b = sender.reserve('mirror', { ...req, timeoutMs: 30 })!;
      expect(sender.reserve('mirror', req)).to.equal(null);
      expect(outcomes).to.deep.equal(['no_cluster', 'overflow']);
      a.send(Buffer.from('hello'));
      b.send(Buffer.from('hello'));
      await until(() => outcomes.includes('timeout'));
      expect(sender.stats('mirror')).to.deep.include({ inflight: 1, dropped: 1, failed: 1, responses: 2 });
      ac.abort();
      await until(() => sender.stats('mirror').inflight === 0);
      expect(rt.stats.rqActive).to.equal(0);
      expect(sender.reserve('mirror', req)).to.equal(null);
    } finally {
      await pool.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('sends over HTTP/2 with the -shadow authority and the body; a stream that never answers is cancelled on close', async () => {
    const seen: { authority: string; body: string }[] = [];
    const server = http2.createServer();
    server.on('stream', (s, h) => {
      let body = '';
      s.on('data', (d: Buffer) => { body += d.toString(); });
      s.on('end', () => { seen.push({ authority: String(h[':authority']), body }); if (h[':path'] === '/ok') { s.respond({ ':status': 200 }); s.end('x'); } });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    session.on('error', () => {});
    const ac = new AbortController();
    const { clusters } = clustersWith(() => ({ kind: 'h2', h2: { get: () => session } }));
    const sender = new ShadowSender(clusters, { now: Date.now, signal: ac.signal });
    try {
      sender.reserve('mirror', { ...req, path: '/ok' })!.send(Buffer.from('body-1'));
      sender.reserve('mirror', { ...req, path: '/hang' })!.send(null);
      await until(() => outcomes.includes('response') && seen.length === 2);
      expect(seen).to.deep.include({ authority: 'svc-shadow:80', body: 'body-1' });
      expect(sender.stats('mirror').inflight).to.equal(1);
      ac.abort();
      await until(() => sender.stats('mirror').inflight === 0);
      expect(outcomes).to.deep.equal(['response', 'error']);
    } finally {
      session.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
