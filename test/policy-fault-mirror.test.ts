/**
 * Fault injection, mirroring, CORS and header manipulation through a real trellis-control (file registry on a
 * config directory of ServiceEntry / DestinationRule / VirtualService YAML) and a real proxy (in-process, sidecar
 * mode, xDS over the control plane's plaintext port, certificates from a fake SDS). Requests enter the proxy's
 * outbound capture listener; the "original destination" is the service VIP, as iptables would give it.
 *
 * Walkthroughs: DS-25 / DS-46 (delay and abort for `end-user: jason` only, 50 % abort), DS-47 (mirror to v2 while
 * v1 answers), plus gRPC abort, CORS preflight and header set/add/remove at route and destination level.
 * Assertions are on behaviour and ordering, never on elapsed time.
 */
import { expect } from 'chai';
import diagnostics_channel from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Proxy, nodeIdentity, silentLogger, type RequestEvent } from '@trellis/proxy';
import { FakeSdsServer, issueTestCert, makeTestCa } from '@trellis/testing';
import { startControl, type ControlProcess } from './processes.js';

interface Seen { readonly backend: string; readonly method: string; readonly path: string; readonly headers: http.IncomingHttpHeaders; readonly body: string; readonly seq: number }
interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string; json: { backend?: string; headers?: Record<string, string> } }

const VIP = { ratings: '10.96.64.13', reviews: '10.96.64.12', web: '10.96.64.14', greeter: '10.96.64.20', greetermirror: '10.96.64.21', shadowsink: '10.96.64.15', slowmirror: '10.96.64.16', deadmirror: '10.96.64.17' } as const;

function serviceEntry(name: string, vip: string, port: number, protocol: string, endpoints: { port: number; version: string }[]): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}.default.svc.cluster.local]
  addresses: [${vip}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: ${port}, name: ${protocol.toLowerCase()}, protocol: ${protocol}}]
  endpoints:
${endpoints.map((e) => `  - {address: 127.0.0.1, ports: {${protocol.toLowerCase()}: ${e.port}}, labels: {app: ${name}, version: ${e.version}}}`).join('\n')}
`;
}

const MESH_CONFIG = (ports: Record<string, number>) => [
  serviceEntry('ratings', VIP.ratings, 9080, 'HTTP', [{ port: ports.ratings!, version: 'v1' }]),
  serviceEntry('reviews', VIP.reviews, 9080, 'HTTP', [{ port: ports.v1!, version: 'v1' }, { port: ports.v2!, version: 'v2' }, { port: ports.v3!, version: 'v3' }]),
  serviceEntry('web', VIP.web, 9080, 'HTTP', [{ port: ports.web!, version: 'v1' }, { port: ports.web2!, version: 'v2' }]),
  serviceEntry('shadowsink', VIP.shadowsink, 9080, 'HTTP', [{ port: ports.sink!, version: 'v1' }]),
  serviceEntry('slowmirror', VIP.slowmirror, 9080, 'HTTP', [{ port: ports.slow!, version: 'v1' }]),
  serviceEntry('deadmirror', VIP.deadmirror, 9080, 'HTTP', [{ port: ports.dead!, version: 'v1' }]),
  serviceEntry('greeter', VIP.greeter, 9090, 'GRPC', [{ port: ports.grpc!, version: 'v1' }]),
  serviceEntry('greetermirror', VIP.greetermirror, 9090, 'GRPC', [{ port: ports.grpcMirror!, version: 'v1' }]),
  `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`,
  `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`,
  // DS-46: for jason, ratings is delayed (/delay) or aborted with 500; DS-25: a share of calls aborted (/half).
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 1s, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
  - match: [{headers: {end-user: {exact: jason}}}]
    fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /half}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /ds25}}]
    fault: {delay: {fixedDelay: 100ms, percentage: {value: 100}}, abort: {httpStatus: 500, percentage: {value: 10}}}
    route: [{destination: {host: ratings}}]
  - route: [{destination: {host: ratings}}]
`,
  // DS-47: v1 answers, v2 gets the copies; a dead and a slow mirror; 50 % mirroring over a 50/50 v1/v3 split.
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /mirror-half}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v3}, weight: 50}
    mirror: {host: shadowsink}
    mirrorPercentage: {value: 50}
  - match: [{uri: {prefix: /mirror-dead}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: deadmirror}
  - match: [{uri: {prefix: /mirror-slow}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: slowmirror}
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 100}
`,
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /headers}}]
    headers:
      request: {set: {x-route-set: route, x-both: route}, add: {x-route-add: route}, remove: [x-drop-me]}
      response: {set: {x-resp-route: route}, add: {x-resp-add: route}, remove: [x-backend-secret]}
    route:
    - destination: {host: web, subset: v1}
      weight: 100
      headers:
        request: {set: {x-dest-set: v1, x-both: dest}, remove: [x-drop-at-dest]}
        response: {set: {x-resp-dest: v1}, remove: [x-backend-other]}
  - match: [{uri: {prefix: /split}}]
    route:
    - destination: {host: web, subset: v1}
      weight: 50
      headers: {request: {set: {x-dest: v1}}, response: {set: {x-chosen: v1}}}
    - destination: {host: web, subset: v2}
      weight: 50
      headers: {request: {set: {x-dest: v2}}, response: {set: {x-chosen: v2}}}
  - route: [{destination: {host: web, subset: v1}}]
    corsPolicy:
      allowOrigins: [{exact: 'https://app.example'}, {prefix: 'https://pre.'}, {regex: 'https://[a-z]+\\.rx\\.example'}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom, content-type]
      exposeHeaders: [x-exposed]
      maxAge: 24h
      allowCredentials: true
`,
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter, namespace: default}
spec:
  hosts: [greeter]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: greeter}}]
  - route: [{destination: {host: greeter}}]
    mirror: {host: greetermirror}
`,
].join('---\n');

/** One keep-alive agent per test run: the proxy's outbound listener is where every request enters. */
function request(agent: http.Agent, port: number, host: string, path: string, o: { headers?: Record<string, string>; method?: string; body?: string; signal?: AbortSignal; sent?: () => void } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers: { host, ...o.headers }, agent, signal: o.signal }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let json: Reply['json'] = {};
        try { json = JSON.parse(body) as Reply['json']; } catch { /* a local reply */ }
        resolve({ status: res.statusCode!, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
    if (o.sent) req.once('finish', o.sent);
    req.end(o.body);
  });
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const EMPTY = Buffer.alloc(0);
const GREETER = {
  hello: { path: '/greeter.Greeter/Hello', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
} satisfies grpc.ServiceDefinition;

describe('policy: fault injection, mirroring, CORS and headers (real control plane + proxy)', function () {
  this.timeout(60_000);
  let dir = '';
  let control: ControlProcess | null = null;
  let sds: FakeSdsServer | null = null;
  let proxy: Proxy | null = null;
  let grpcServer: grpc.Server | null = null;
  const servers: http.Server[] = [];
  const ports: Record<string, number> = {};
  const seen: Seen[] = [];
  let seq = 0;
  let slowHeld = 0;
  let slowMax = 0;
  let grpcCalls = 0;
  const grpcMirrored: { host: string; body: string }[] = [];
  let grpcMirror: grpc.Server | null = null;
  /** The VIP:port a new outbound connection "was for" (what SO_ORIGINAL_DST would say). */
  let originalDst = { address: VIP.ratings as string, port: 9080 };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const events: RequestEvent[] = [];
  const mirrorEvents: { cluster: string; outcome: string; status: number }[] = [];
  const onRequestEvent = (m: unknown) => events.push(m as RequestEvent);
  const onMirrorEvent = (m: unknown) => mirrorEvents.push(m as (typeof mirrorEvents)[number]);
  const out = () => proxy!.listeners.port('virtualOutbound')!;

  before(async () => {
    diagnostics_channel.subscribe('trellis:proxy:request', onRequestEvent);
    diagnostics_channel.subscribe('trellis:proxy:mirror', onMirrorEvent);
    const echo = (name: string) => http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        seen.push({ backend: name, method: req.method!, path: req.url!, headers: req.headers, body, seq: seq++ });
        res.writeHead(200, { 'content-type': 'application/json', 'x-backend-secret': 's', 'x-backend-other': 'o', 'x-exposed': 'e' });
        res.end(JSON.stringify({ backend: name, headers: req.headers }));
      });
    });
    for (const name of ['ratings', 'v1', 'v2', 'v3', 'web', 'web2', 'sink']) {
      const s = echo(name);
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      ports[name] = (s.address() as AddressInfo).port;
      servers.push(s);
    }
    // A mirror that reads the request and never answers.
    const slow = http.createServer((req) => { slowHeld += 1; slowMax = Math.max(slowMax, slowHeld); req.resume(); req.socket.once('close', () => { slowHeld -= 1; }); });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    ports.slow = (slow.address() as AddressInfo).port;
    servers.push(slow);
    // A mirror nobody listens on: bind, note the port, close.
    const gone = http.createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    ports.dead = (gone.address() as AddressInfo).port;
    await new Promise<void>((r) => gone.close(() => r()));

    grpcServer = new grpc.Server();
    grpcServer.addService(GREETER, { hello: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => { grpcCalls += 1; cb(null, Buffer.from('hi')); } });
    ports.grpc = await new Promise<number>((resolve, reject) => grpcServer!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    grpcMirror = new grpc.Server();
    grpcMirror.addService(GREETER, { hello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => { grpcMirrored.push({ host: call.getHost(), body: call.request.toString() }); cb(null, Buffer.from('from the mirror')); } });
    ports.grpcMirror = await new Promise<number>((resolve, reject) => grpcMirror!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));

    dir = mkdtempSync(join(tmpdir(), 'trellis-fault-mirror-'));
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'config', 'mesh.yaml'), MESH_CONFIG(ports));
    control = await startControl([
      '--config-dir', join(dir, 'config'), '--state-dir', join(dir, 'state'), '--listen-xds', '127.0.0.1:0', '--listen-xds-plaintext', '127.0.0.1:0',
      '--listen-http', '127.0.0.1:0', '--debounce-after', '20ms', '--debounce-max', '200ms',
    ], ['xds-plaintext']);

    const ca = makeTestCa();
    sds = await new FakeSdsServer().start();
    sds.setCertificate('default', issueTestCert(ca, 'spiffe://cluster.local/ns/default/sa/productpage'));
    sds.setTrustBundle('ROOTCA', ca.certPem);
    proxy = new Proxy({
      node: nodeIdentity({ mode: 'sidecar', ip: '127.0.0.1', workloadName: 'productpage-v1', namespace: 'default', serviceAccount: 'productpage', labels: { app: 'productpage', version: 'v1' }, clusterId: 'c1', network: '' }),
      xds: { target: control.addresses['xds-plaintext']!, credentials: grpc.credentials.createInsecure() },
      sdsSocket: sds.socketPath,
      logger: silentLogger(),
      ports: { outbound: 0, inbound: 0, admin: 0, prometheus: 0, health: 0 },
      bindAddress: '127.0.0.1', adminAddress: '127.0.0.1', statusAddress: '127.0.0.1',
      namespace: 'default', serviceAccount: 'productpage', workloadName: 'productpage-v1',
      originalDst: () => originalDst,
    });
    await proxy.start();
    await proxy.whenReady();
    // Every service's route is in (the first snapshot may come before the file registry has synced).
    await until('routes for every service', () => {
      const rc = proxy!.store.routes().get('http.9080');
      return !!rc && ['ratings', 'reviews', 'web', 'shadowsink', 'slowmirror', 'deadmirror'].every((s) => rc.virtualHosts.some((v) => v.domains.includes(`${s}.default.svc.cluster.local`)))
        && !!proxy!.store.routes().get('http.9090');
    });
  });

  after(async () => {
    diagnostics_channel.unsubscribe('trellis:proxy:request', onRequestEvent);
    diagnostics_channel.unsubscribe('trellis:proxy:mirror', onMirrorEvent);
    agent.destroy();
    await proxy?.close();
    await sds?.stop();
    await control?.stop();
    grpcServer?.forceShutdown();
    grpcMirror?.forceShutdown();
    for (const s of servers) { s.closeAllConnections(); await new Promise<void>((r) => s.close(() => r())); }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ratings = (path: string, headers: Record<string, string> = {}, o: { signal?: AbortSignal; sent?: () => void } = {}) => {
    originalDst = { address: VIP.ratings, port: 9080 };
    return request(agent, out(), 'ratings:9080', path, { headers, ...o });
  };
  /** Sends a request and resolves (with its reply promise) once the request is written to the proxy. */
  const sentThen = async (send: (sent: () => void) => Promise<Reply | Error>): Promise<{ reply: Promise<Reply | Error> }> => {
    let reply!: Promise<Reply | Error>;
    await new Promise<void>((resolve) => { reply = send(resolve); });
    return { reply };
  };

  describe('fault injection (DS-25, DS-46)', () => {
    it('aborts jason\'s requests with 500 (flag FI) and lets everyone else through', async () => {
      const before = seen.length;
      const j = await ratings('/ratings/0', { 'end-user': 'jason' });
      expect(j.status).to.equal(500);
      expect(j.body).to.equal('fault filter abort');
      const other = await ratings('/ratings/0', { 'end-user': 'alice' });
      const anon = await ratings('/ratings/0');
      expect([other.status, anon.status]).to.deep.equal([200, 200]);
      expect(other.json.backend).to.equal('ratings');
      // Only the two others reached the service.
      expect(seen.slice(before).map((s) => s.headers['end-user'] ?? '-')).to.deep.equal(['alice', '-']);
      await until('the access event of the abort', () => events.some((e) => e.responseCode === 500 && e.responseFlags.split(',').includes('FI')));
    });

    it('holds jason\'s request: a later request of someone else reaches the service first (flag DI)', async () => {
      const before = seen.length;
      // jason's request is written to the proxy before the other one is sent.
      const slow = await sentThen((sent) => ratings('/delay/1', { 'end-user': 'jason' }, { sent }));
      const fast = await ratings('/delay/2', { 'end-user': 'alice' });
      expect(fast.status).to.equal(200);
      const s = await slow.reply as Reply;
      expect(s.status).to.equal(200);
      expect(s.json.backend).to.equal('ratings');
      const order = seen.slice(before).map((x) => x.path);
      expect(order).to.deep.equal(['/delay/2', '/delay/1']);
      await until('the access event of the delay', () => events.some((e) => e.responseCode === 200 && e.responseFlags.split(',').includes('DI')));
    });

    it('a delayed request whose client goes away never reaches the service', async () => {
      const before = seen.length;
      const ac = new AbortController();
      const gone = await sentThen((sent) => ratings('/delay/gone', { 'end-user': 'jason' }, { signal: ac.signal, sent }).catch((e: Error) => e));
      await new Promise((r) => setTimeout(r, 20));
      ac.abort();
      expect(await gone.reply).to.be.instanceOf(Error);
      // A second held request, sent after the first was cancelled, comes out after the first one's delay would have.
      const after = await ratings('/delay/after', { 'end-user': 'jason' });
      expect(after.status).to.equal(200);
      expect(seen.slice(before).map((x) => x.path)).to.deep.equal(['/delay/after']);
    });

    it('aborts about half of the requests at 50 % (binomial tolerance over 200 requests)', async () => {
      let aborted = 0;
      const statuses = new Set<number>();
      for (let i = 0; i < 200; i += 20) {
        const batch = await Promise.all(Array.from({ length: 20 }, () => ratings('/half')));
        for (const r of batch) { statuses.add(r.status); if (r.status === 503) aborted += 1; }
      }
      expect([...statuses].sort()).to.deep.equal([200, 503]);
      // mean 100, sd ≈ 7: 60–140 is more than 5 sd either way
      expect(aborted).to.be.within(60, 140);
    });

    it('DS-25: every call delayed (DI), about 10 % of them then aborted with 500 (DI,FI)', async () => {
      const firstEvent = events.length;
      let aborted = 0;
      for (let i = 0; i < 100; i += 20) {
        for (const r of await Promise.all(Array.from({ length: 20 }, () => ratings('/ds25')))) if (r.status === 500) aborted += 1;
      }
      // mean 10, sd 3
      expect(aborted).to.be.within(1, 25);
      await until('the access events', () => events.length - firstEvent >= 100);
      const flags = events.slice(firstEvent).map((e) => e.responseFlags);
      expect(flags.filter((f) => f === 'DI').length).to.equal(100 - aborted);
      expect(flags.filter((f) => f === 'DI,FI').length).to.equal(aborted);
    });

    it('aborts a gRPC call of jason with UNAVAILABLE (trailers-only), others get their answer (and are mirrored over HTTP/2)', async () => {
      originalDst = { address: VIP.greeter, port: 9090 };
      const Client = grpc.makeGenericClientConstructor(GREETER, 'Greeter');
      const client = new Client(`127.0.0.1:${out()}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'greeter:9090' }) as grpc.Client & Record<string, unknown>;
      try {
        const call = (md: grpc.Metadata, payload = EMPTY) => new Promise<{ code: number; details: string; value?: string }>((resolve) => {
          (client as unknown as { hello: (b: Buffer, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, v?: Buffer) => void) => void }).hello(payload, md, (e, v) => resolve(e ? { code: e.code, details: e.details } : { code: 0, details: '', value: v!.toString() }));
        });
        const jason = new grpc.Metadata();
        jason.set('end-user', 'jason');
        const callsBefore = grpcCalls;
        const aborted = await call(jason);
        expect(aborted.code).to.equal(grpc.status.UNAVAILABLE);
        expect(aborted.details).to.equal('fault filter abort');
        expect(grpcCalls).to.equal(callsBefore);
        const ok = await call(new grpc.Metadata(), Buffer.from('payload-1'));
        expect(ok).to.deep.equal({ code: 0, details: '', value: 'hi' });
        expect(grpcCalls).to.equal(callsBefore + 1);
        // The route that answered also mirrors (over HTTP/2, body included); the aborted call was never copied.
        await until('the gRPC mirror copy', () => grpcMirrored.length > 0);
        expect(grpcMirrored).to.deep.equal([{ host: 'greeter-shadow:9090', body: 'payload-1' }]);
      } finally {
        client.close();
      }
    });
  });

  describe('mirroring (DS-47)', () => {
    const reviews = (path: string, o: { method?: string; body?: string; headers?: Record<string, string> } = {}) => {
      originalDst = { address: VIP.reviews, port: 9080 };
      return request(agent, out(), 'reviews:9080', path, o);
    };

    it('v1 answers, v2 gets a copy with the -shadow authority, headers and body', async () => {
      const before = seen.length;
      const r = await reviews('/reviews/7', { method: 'POST', body: 'stars=5', headers: { 'content-type': 'text/plain', 'x-trace': 't1' } });
      expect(r.status).to.equal(200);
      expect(r.json.backend).to.equal('v1');
      await until('the mirror copy', () => seen.slice(before).some((s) => s.backend === 'v2'));
      const copy = seen.slice(before).find((s) => s.backend === 'v2')!;
      const primary = seen.slice(before).find((s) => s.backend === 'v1')!;
      expect(copy.headers.host).to.equal('reviews-shadow:9080');
      expect(primary.headers.host).to.equal('reviews:9080');
      expect(copy).to.deep.include({ method: 'POST', path: '/reviews/7', body: 'stars=5' });
      expect(copy.headers['x-trace']).to.equal('t1');
      expect(primary.body).to.equal('stars=5');
    });

    it('a chunked body of several writes is copied whole', async () => {
      const before = seen.length;
      originalDst = { address: VIP.reviews, port: 9080 };
      const r = await new Promise<Reply>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: out(), path: '/reviews/chunked', method: 'PUT', headers: { host: 'reviews:9080' }, agent }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, json: JSON.parse(body) as Reply['json'] }));
        });
        req.on('error', reject);
        req.write('part-1;');
        setTimeout(() => { req.write('part-2;'); req.end('part-3'); }, 20);
      });
      expect(r.json.backend).to.equal('v1');
      await until('the mirror copy', () => seen.slice(before).some((s) => s.backend === 'v2'));
      expect(seen.slice(before).find((s) => s.backend === 'v2')!.body).to.equal('part-1;part-2;part-3');
      expect(seen.slice(before).find((s) => s.backend === 'v1')!.body).to.equal('part-1;part-2;part-3');
    });

    it('a dead mirror never fails the caller', async () => {
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => reviews(`/mirror-dead/${i}`)));
      expect(results.map((r) => r.status)).to.deep.equal(Array(10).fill(200));
      expect(results.every((r) => r.json.backend === 'v1')).to.equal(true);
      await until('the mirror failures to be counted', () => mirrorEvents.filter((e) => e.cluster.includes('deadmirror') && e.outcome === 'error').length >= 10);
    });

    it('a mirror that never answers neither slows nor fails the caller, and holds a bounded number of copies', async () => {
      const n = 90;
      const results: Reply[] = [];
      for (let i = 0; i < n; i += 15) results.push(...await Promise.all(Array.from({ length: 15 }, (_, k) => reviews(`/mirror-slow/${i + k}`))));
      expect(results.map((r) => r.status)).to.deep.equal(Array(n).fill(200));
      await until('the slow mirror to hold its share', () => slowHeld >= 64);
      // At most 64 copies in flight per mirror cluster: the rest were dropped, not queued.
      expect(slowMax).to.equal(64);
      expect(mirrorEvents.filter((e) => e.cluster.includes('slowmirror') && e.outcome === 'overflow').length).to.equal(n - 64);
    });

    it('mirrors about half of the requests at mirrorPercentage 50, while the split answers from v1 and v3', async () => {
      const before = seen.length;
      const backends: Record<string, number> = {};
      for (let i = 0; i < 200; i += 20) {
        for (const r of await Promise.all(Array.from({ length: 20 }, () => reviews('/mirror-half')))) backends[r.json.backend!] = (backends[r.json.backend!] ?? 0) + 1;
      }
      expect(Object.keys(backends).sort()).to.deep.equal(['v1', 'v3']);
      expect(backends.v1).to.be.within(60, 140);
      const mirrored = () => seen.slice(before).filter((s) => s.backend === 'sink').length;
      await until('the mirror copies', () => mirrorEvents.filter((e) => e.cluster.includes('shadowsink') && e.outcome === 'response').length === mirrored() && mirrored() > 0);
      expect(mirrored()).to.be.within(60, 140);
      expect(seen.slice(before).filter((s) => s.backend === 'sink').every((s) => s.headers.host === 'reviews-shadow:9080')).to.equal(true);
    });
  });

  describe('CORS', () => {
    const web = (path: string, method: string, headers: Record<string, string>) => {
      originalDst = { address: VIP.web, port: 9080 };
      return request(agent, out(), 'web:9080', path, { method, headers });
    };
    const preflight = (origin: string) => web('/api', 'OPTIONS', { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-custom' });

    for (const origin of ['https://app.example', 'https://pre.anything.example', 'https://abc.rx.example']) {
      it(`answers an allowed preflight locally (${origin})`, async () => {
        const before = seen.length;
        const r = await preflight(origin);
        expect(r.status).to.equal(200);
        expect(r.headers).to.deep.include({
          'access-control-allow-origin': origin, 'access-control-allow-methods': 'GET,POST', 'access-control-allow-headers': 'x-custom,content-type',
          'access-control-max-age': '86400', 'access-control-allow-credentials': 'true',
        });
        expect(seen.length).to.equal(before);
      });
    }

    it('forwards a preflight from an origin not allowed, with no CORS headers', async () => {
      const before = seen.length;
      const r = await preflight('https://evil.example');
      expect(r.json.backend).to.equal('web');
      expect(seen.slice(before).map((s) => s.method)).to.deep.equal(['OPTIONS']);
      expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).to.deep.equal([]);
    });

    it('adds allow-origin, credentials and expose-headers to an actual request from an allowed origin only', async () => {
      const ok = await web('/api', 'GET', { origin: 'https://app.example' });
      expect(ok.headers).to.deep.include({ 'access-control-allow-origin': 'https://app.example', 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-exposed' });
      const bad = await web('/api', 'GET', { origin: 'https://app.example.evil' });
      expect(bad.status).to.equal(200);
      expect(Object.keys(bad.headers).filter((h) => h.startsWith('access-control-'))).to.deep.equal([]);
      const none = await web('/api', 'GET', {});
      expect(Object.keys(none.headers).filter((h) => h.startsWith('access-control-'))).to.deep.equal([]);
    });
  });

  describe('header manipulation', () => {
    const web = (path: string, headers: Record<string, string> = {}) => {
      originalDst = { address: VIP.web, port: 9080 };
      return request(agent, out(), 'web:9080', path, { headers });
    };

    it('sets, adds and removes request and response headers at route and destination level', async () => {
      const r = await web('/headers', { 'x-route-set': 'client', 'x-route-add': 'client', 'x-drop-me': '1', 'x-drop-at-dest': '1', 'x-keep': 'k' });
      const h = r.json.headers!;
      expect(h['x-route-set']).to.equal('route');
      expect(h['x-route-add']).to.equal('client, route');
      expect(h['x-dest-set']).to.equal('v1');
      expect(h['x-keep']).to.equal('k');
      expect(h).to.not.have.property('x-drop-me');
      expect(h).to.not.have.property('x-drop-at-dest');
      // Envoy's default order: destination (weighted cluster) first, then the route: the route's set wins.
      expect(h['x-both']).to.equal('route');
      expect(r.headers).to.deep.include({ 'x-resp-route': 'route', 'x-resp-add': 'route', 'x-resp-dest': 'v1', 'x-exposed': 'e' });
      expect(r.headers).to.not.have.property('x-backend-secret');
      expect(r.headers).to.not.have.property('x-backend-other');
    });

    it('applies the chosen destination\'s own operations in a weighted split', async () => {
      const seenPairs = new Set<string>();
      for (let i = 0; i < 40 && seenPairs.size < 2; i++) {
        const r = await web('/split');
        const backend = r.json.backend!;
        const want = backend === 'web' ? 'v1' : 'v2';
        expect(r.json.headers!['x-dest']).to.equal(want);
        expect(r.headers['x-chosen']).to.equal(want);
        seenPairs.add(want);
      }
      expect([...seenPairs].sort()).to.deep.equal(['v1', 'v2']);
    });
  });
});
