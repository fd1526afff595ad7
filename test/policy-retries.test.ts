/**
 * Timeouts and retries through a real proxy configured by a real control plane from VirtualService and
 * DestinationRule YAML (issue 6 item 1, walkthrough DS-24). The backends count attempts per request id; nothing
 * here asserts how long anything took.
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import diagnostics_channel from 'node:diagnostics_channel';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Proxy } from '@trellis/proxy';
import { type Mesh, startMesh } from './policy-retries-fixtures.js';

interface Seen { attempt: string; body: string }
interface Reply { status: number; body: string; headers: http.IncomingHttpHeaders }

const VIP = '240.240.63.1';
const GRPC_VIP = '240.240.63.2';

function serviceEntries(httpPort: number, grpcPort: number, deadPort: number, h2Port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: h2, namespace: default }
spec:
  hosts: [h2.test]
  addresses: [${VIP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 83, name: http2, protocol: HTTP2 }]
  endpoints: [{ address: 127.0.0.1, ports: { http2: ${h2Port} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: flaky, namespace: default }
spec:
  hosts: [flaky.test]
  addresses: [${VIP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 82, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${deadPort} } }, { address: 127.0.0.1, ports: { http: ${httpPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: retry, namespace: default }
spec:
  hosts: [retry.test]
  addresses: [${VIP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${httpPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: grpc, namespace: default }
spec:
  hosts: [grpc.test]
  addresses: [${GRPC_VIP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 81, name: grpc, protocol: GRPC }]
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${grpcPort} } }]
`;
}

const VIRTUAL_SERVICE = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: retry, namespace: default }
spec:
  hosts: [retry.test]
  http:
  - name: ds24
    match: [{ uri: { prefix: /ds24/ } }]
    route: [{ destination: { host: retry.test } }]
    timeout: 2s
    retries: { attempts: 2, perTryTimeout: 500ms, retryOn: 5xx }
  - name: slow
    match: [{ uri: { prefix: /slow/ } }]
    route: [{ destination: { host: retry.test } }]
    timeout: 1s
  - name: gateway-error
    match: [{ uri: { prefix: /gw/ } }]
    route: [{ destination: { host: retry.test } }]
    retries: { attempts: 2, retryOn: gateway-error }
  - name: budget
    match: [{ uri: { prefix: /budget/ } }]
    route: [{ destination: { host: retry.test } }]
    retries: { attempts: 3, retryOn: 5xx }
  - name: rest
    route: [{ destination: { host: retry.test } }]
`;

/** The route config reached the proxy with the ds24 route's retry policy. */
const configured = (p: Proxy): boolean => {
  for (const rc of p.store.routes().values()) for (const vh of rc.virtualHosts) {
    if (vh.domains.includes('retry.test') && vh.routes.some((r) => r.name === 'ds24')) return [...p.clusters.all().keys()].filter((k) => /\|(grpc|flaky|h2)\.test$/.test(k)).length === 3;
  }
  return false;
};

describe('policy: timeouts and retries (DS-24) through a proxy configured by the control plane', function () {
  this.timeout(60_000);
  let mesh: Mesh;
  let backend: http.Server;
  let grpcServer: grpc.Server;
  let h2Server: http2.Http2Server;
  const h2Streams = new Map<string, number>();
  const seen = new Map<string, Seen[]>();
  const held: { key: string; res: http.ServerResponse }[] = [];
  const aborted = new Set<string>();
  let grpcCalls = 0;
  const flags: string[] = [];
  const onRequest = (m: unknown) => { flags.push((m as { responseFlags: string }).responseFlags); };
  const retries: { reason: string; attempt: number; responseCode: number }[] = [];
  const onRetry = (m: unknown) => { retries.push(m as { reason: string; attempt: number; responseCode: number }); };

  const stats = () => {
    const rt = [...mesh.proxy.clusters.all()].find(([k]) => k.endsWith('|retry.test'))![1];
    return { ...rt.stats };
  };

  before(async () => {
    backend = http.createServer((req, res) => {
      const [, kind, arg, id] = (req.url ?? '').split('/');
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        const key = `${kind}/${arg}/${id}`;
        const list = seen.get(key) ?? [];
        list.push({ attempt: String(req.headers['x-envoy-attempt-count'] ?? ''), body });
        seen.set(key, list);
        const n = list.length;
        res.on('close', () => { if (!res.writableFinished) aborted.add(key); });
        const reply = (status: number) => res.writeHead(status, { 'content-type': 'text/plain' }).end(`${status} attempt ${n} body ${body.length}`);
        switch (kind) {
          case 'ds24':
            if (arg === 'fail-twice') reply(n <= 2 ? 503 : 200);
            else if (arg === 'hang') held.push({ key, res });
            else if (arg === 'fail-once') reply(n === 1 ? 503 : 200);
            return;
          case 'slow': held.push({ key, res }); return;
          case 'gw': reply(Number(arg)); return;
          case 'budget': if (n === 1) reply(503); else held.push({ key, res }); return;
          default: reply(200);
        }
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    grpcServer = new grpc.Server();
    grpcServer.addService(ECHO, {
      echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        grpcCalls += 1;
        if (grpcCalls <= 1) cb({ code: grpc.status.UNAVAILABLE, details: 'warming up' });
        else cb(null, call.request);
      },
    });
    const grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port))));
    // A port nobody listens on: connections to it are refused.
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    // An HTTP/2 upstream that refuses the first stream of each request id (REFUSED_STREAM), then answers.
    h2Server = http2.createServer();
    h2Server.on('stream', (stream, headers) => {
      const key = String(headers[':path']);
      const n = (h2Streams.get(key) ?? 0) + 1;
      h2Streams.set(key, n);
      stream.on('error', () => {}); // closing with an error code errors our own side of the stream
      if (n === 1) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      else {
        stream.respond({ ':status': 200 });
        stream.end(`h2 attempt ${n} ${String(headers['x-envoy-attempt-count'])}`);
      }
    });
    await new Promise<void>((r) => h2Server.listen(0, '127.0.0.1', r));
    mesh = await startMesh({ 'services.yaml': serviceEntries((backend.address() as AddressInfo).port, grpcPort, deadPort, (h2Server.address() as AddressInfo).port), 'vs.yaml': VIRTUAL_SERVICE }, configured);
    diagnostics_channel.subscribe('trellis:proxy:request', onRequest);
    diagnostics_channel.subscribe('trellis:proxy:retry', onRetry);
  });

  after(async () => {
    diagnostics_channel.unsubscribe('trellis:proxy:request', onRequest);
    diagnostics_channel.unsubscribe('trellis:proxy:retry', onRetry);
    for (const h of held.splice(0)) h.res.destroy();
    await mesh?.stop();
    backend?.closeAllConnections();
    await new Promise<void>((r) => (backend ? backend.close(() => r()) : r()));
    grpcServer?.forceShutdown();
    await new Promise<void>((r) => (h2Server ? h2Server.close(() => r()) : r()));
  });

  const send = (path: string, o: { method?: string; body?: string | Buffer; host?: string; port?: number } = {}): Promise<Reply> => {
    mesh.dst = { address: VIP, port: o.port ?? 80 };
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: mesh.outboundPort, path, method: o.method ?? 'GET', headers: { host: o.host ?? 'retry.test' }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      });
      req.on('error', reject);
      req.end(o.body);
    });
  };
  let seq = 0;
  const id = () => `${Date.now().toString(36)}-${++seq}`;

  it('DS-24: an upstream failing the first 2 attempts with 503 → the caller sees 200, the upstream saw 3 attempts', async () => {
    const k = id();
    const before = stats();
    const r = await send(`/ds24/fail-twice/${k}`);
    expect(r.status).to.equal(200);
    expect(seen.get(`ds24/fail-twice/${k}`)!.map((s) => s.attempt)).to.deep.equal(['1', '2', '3']);
    const after = stats();
    expect(after.retries - before.retries).to.equal(2);
    expect(after.retrySuccess - before.retrySuccess).to.equal(1);
  });

  it('DS-24: perTryTimeout 500ms on a hanging upstream → 3 attempts, then 504 with UT (retry limit: URX)', async () => {
    const k = id();
    const before = stats();
    flags.length = 0;
    const r = await send(`/ds24/hang/${k}`);
    expect(r.status).to.equal(504);
    expect(r.body).to.equal('upstream request timeout');
    expect(seen.get(`ds24/hang/${k}`)!.length).to.equal(3);
    const after = stats();
    expect(after.perTryTimeout - before.perTryTimeout).to.equal(3);
    expect(after.retries - before.retries).to.equal(2);
    expect(flags.at(-1)).to.equal('UT,URX');
  });

  it('DS-24: a 1 s route timeout aborts a slow call with 504 UT and cancels the upstream request', async () => {
    const k = id();
    const before = stats();
    flags.length = 0;
    const r = await send(`/slow/x/${k}`);
    expect(r.status).to.equal(504);
    expect(flags.at(-1)).to.equal('UT');
    expect(stats().rqTimeout - before.rqTimeout).to.equal(1);
    await until(() => aborted.has(`slow/x/${k}`));
  });

  for (const code of [500, 502, 503, 504]) {
    const retried = code !== 500;
    it(`retryOn gateway-error ${retried ? 'retries' : 'does not retry'} a ${code}`, async () => {
      const k = id();
      flags.length = 0;
      const r = await send(`/gw/${code}/${k}`);
      expect(r.status).to.equal(code);
      expect(seen.get(`gw/${code}/${k}`)!.length).to.equal(retried ? 3 : 1);
      expect(flags.at(-1)).to.equal(retried ? 'URX' : '-');
    });
  }

  it('a POST with a body is retried with the same body', async () => {
    const k = id();
    const payload = `payload-${k}-`.repeat(100);
    const r = await send(`/ds24/fail-once/${k}`, { method: 'POST', body: payload });
    expect(r.status).to.equal(200);
    expect(seen.get(`ds24/fail-once/${k}`)).to.deep.equal([{ attempt: '1', body: payload }, { attempt: '2', body: payload }]);
  });

  it('a body larger than the 1 MiB buffer is streamed and not retried', async () => {
    const k = id();
    const big = Buffer.alloc(1024 * 1024 + 1, 'a');
    const r = await send(`/ds24/fail-once/${k}`, { method: 'POST', body: big });
    expect(r.status).to.equal(503);
    expect(seen.get(`ds24/fail-once/${k}`)!.map((s) => s.body.length)).to.deep.equal([big.length]);
  });

  it('retry budget: 10 concurrent failing requests make at most max(3, 20% of 10) = 3 retries at once; the rest overflow (UO)', async () => {
    const before = stats();
    const keys = Array.from({ length: 10 }, () => id());
    flags.length = 0;
    const replies = keys.map((k) => send(`/budget/x/${k}`));
    // 7 callers get the upstream's 503 at once (budget spent); 3 retries hang at the upstream.
    const waiting = () => held.filter((h) => h.key.startsWith('budget/') && !h.res.writableEnded);
    await until(() => stats().retryOverflow - before.retryOverflow === 7 && waiting().length === 3);
    const attempts = keys.reduce((s, k) => s + (seen.get(`budget/x/${k}`)?.length ?? 0), 0);
    expect(attempts).to.equal(13);
    expect(stats().retriesActive).to.equal(3);
    for (const h of waiting()) h.res.writeHead(200).end('late');
    const statuses = (await Promise.all(replies)).map((r) => r.status).sort();
    expect(statuses).to.deep.equal([200, 200, 200, 503, 503, 503, 503, 503, 503, 503]);
    expect(flags.filter((f) => f === 'UO').length).to.equal(7);
    const after = stats();
    expect(after.retries - before.retries).to.equal(3);
    expect(after.retriesActive).to.equal(0);
  });

  it('DestinationRule connectionPool.http.maxRetries: 1 → one retry outstanding at a time for the cluster', async () => {
    await mesh.apply('dr.yaml', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: retry, namespace: default }
spec:
  host: retry.test
  trafficPolicy: { connectionPool: { http: { maxRetries: 1 } } }
`, (p) => [...p.clusters.all()].some(([k, rt]) => k.endsWith('|retry.test') && rt.config.circuitBreakers.maxRetries === 1));
    const before = stats();
    const keys = Array.from({ length: 5 }, () => id());
    const replies = keys.map((k) => send(`/budget/x/${k}`));
    const waiting = () => held.filter((h) => h.key.startsWith('budget/') && !h.res.writableEnded);
    await until(() => stats().retryOverflow - before.retryOverflow === 4 && waiting().length === 1);
    expect(keys.reduce((s, k) => s + (seen.get(`budget/x/${k}`)?.length ?? 0), 0)).to.equal(6);
    for (const h of waiting()) h.res.writeHead(200).end('late');
    expect((await Promise.all(replies)).map((r) => r.status).sort()).to.deep.equal([200, 503, 503, 503, 503]);
  });

  it('connect-failure (Istio\'s default policy): a refused connection is retried on the other endpoint (previous_hosts)', async () => {
    const rt = () => [...mesh.proxy.clusters.all()].find(([k]) => k.endsWith('|flaky.test'))![1];
    const before = { ...rt().stats };
    const replies = [];
    for (let i = 0; i < 6; i++) replies.push(await send(`/other/x/${id()}`, { host: 'flaky.test', port: 82 }));
    expect(replies.map((r) => r.status)).to.deep.equal([200, 200, 200, 200, 200, 200]);
    const after = rt().stats;
    expect(after.cxConnectFail - before.cxConnectFail).to.be.greaterThan(0);
    expect(after.retries - before.retries).to.equal(after.cxConnectFail - before.cxConnectFail);
  });

  it('refused-stream (Istio\'s default policy): an HTTP/2 upstream refusing the stream is retried', async () => {
    const k = `/refuse/${id()}`;
    const r = await send(k, { host: 'h2.test', port: 83 });
    expect(r.status).to.equal(200);
    expect(r.body).to.equal('h2 attempt 2 2');
    expect(h2Streams.get(k)).to.equal(2);
  });

  it('an HTTP/2 client\'s POST body is resent on the retry', async () => {
    const k = id();
    const payload = `h2-payload-${k}`;
    mesh.dst = { address: VIP, port: 80 };
    const session = http2.connect(`http://127.0.0.1:${mesh.outboundPort}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': `/ds24/fail-once/${k}`, ':authority': 'retry.test' });
        let st = 0;
        req.on('response', (h) => { st = Number(h[':status']); });
        req.on('data', () => {});
        req.on('end', () => resolve(st));
        req.on('error', reject);
        req.write(payload.slice(0, 5));
        setTimeout(() => req.end(payload.slice(5)), 20);
      });
      expect(status).to.equal(200);
      expect(seen.get(`ds24/fail-once/${k}`)).to.deep.equal([{ attempt: '1', body: payload }, { attempt: '2', body: payload }]);
    } finally {
      session.close();
    }
  });

  it('gRPC: UNAVAILABLE (a trailers-only response) is retried by Istio\'s default policy', async () => {
    mesh.dst = { address: GRPC_VIP, port: 81 };
    const Client = grpc.makeGenericClientConstructor(ECHO, 'Echo');
    const client = new Client(`127.0.0.1:${mesh.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'grpc.test:81' }) as unknown as grpc.Client & { echo: (req: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void };
    try {
      const before = grpcCalls;
      const out = await new Promise<Buffer>((resolve, reject) => client.echo(Buffer.from('ping'), (e, r) => (e ? reject(e) : resolve(r!))));
      expect(out.toString()).to.equal('ping');
      expect(grpcCalls - before).to.equal(2);
      expect(retries.some((e) => e.reason === 'unavailable')).to.equal(true);
    } finally {
      client.close();
    }
  });
});

const ECHO: grpc.ServiceDefinition = {
  echo: {
    path: '/trellis.test.Echo/Echo', requestStream: false, responseStream: false,
    requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b,
  },
};

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
