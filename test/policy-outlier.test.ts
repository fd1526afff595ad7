/**
 * DS-23 and connection-pool circuit breaking with real processes (any user): trellis-control on a config directory,
 * a `trellis-proxy --mode gateway` routing by host:
 * - `flaky.example.com`: two loopback endpoints, one answering 500, DestinationRule `outlierDetection`. After 5
 *   consecutive errors the bad endpoint is ejected (every call reaches the good one, the admin `/clusters` view shows
 *   `failed_outlier_check` and the ejection count), and once healthy again it comes back after the ejection time.
 * - the gateway is the edge (`use_remote_address`): it appends the client's address to `x-forwarded-for` and does
 *   not believe the client's `x-forwarded-proto`.
 * - `slow.example.com`: one endpoint that holds requests, DestinationRule `connectionPool` with one connection and one
 *   pending request: a third concurrent request is refused at once with 503 and response flag UO.
 */
import { expect } from 'chai';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, startControl, type ControlProcess } from './processes.js';
import { freePort, httpGet, startGateway, type GatewayProcess } from './gateway-fixtures.js';

describe('outlier detection (DS-23), connection-pool limits and edge headers through a real gateway', function () {
  this.timeout(60_000);
  let dir: string;
  let control: ControlProcess;
  let gw: GatewayProcess;
  let gwPort: number;
  const servers: http.Server[] = [];
  let badFails = true;
  const seen = { good: 0, bad: 0 };
  let lastHeaders: http.IncomingHttpHeaders = {};

  const held: http.ServerResponse[] = [];
  let slowPort = 0;

  const backend = (name: 'good' | 'bad'): Promise<number> => new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      seen[name] += 1;
      lastHeaders = req.headers;
      const fail = name === 'bad' && badFails;
      res.writeHead(fail ? 500 : 200, { 'content-type': 'text/plain' });
      res.end(fail ? 'broken' : name);
    });
    servers.push(s);
    s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port));
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-outlier-'));
    mkdirSync(join(dir, 'config'));
    const [good, bad] = [await backend('good'), await backend('bad')];
    const slow = http.createServer((_req, res) => { held.push(res); });
    servers.push(slow);
    slowPort = await new Promise<number>((r) => slow.listen(0, '127.0.0.1', () => r((slow.address() as { port: number }).port)));
    gwPort = await freePort();
    writeFileSync(join(dir, 'config', 'flaky.yaml'), `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: flaky, namespace: default}
spec:
  hosts: [flaky.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${good}}}
  - {address: 127.0.0.1, ports: {http: ${bad}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: flaky, namespace: default}
spec:
  host: flaky.example.com
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: slow, namespace: default}
spec:
  hosts: [slow.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${slowPort}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: slow, namespace: default}
spec:
  host: slow.example.com
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: ${gwPort}, name: http, protocol: HTTP}, hosts: ['*']}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: default}
spec:
  hosts: ['*']
  gateways: [edge]
  http:
  - match: [{authority: {exact: slow.example.com}}]
    route: [{destination: {host: slow.example.com, port: {number: 80}}}]
  - route: [{destination: {host: flaky.example.com, port: {number: 80}}}]
`);
    control = await startControl([
      '--config-dir', join(dir, 'config'), '--state-dir', join(dir, 'state'), '--listen-xds', 'off',
      '--listen-xds-plaintext', '127.0.0.1:0', '--listen-http', '127.0.0.1:0', '--debounce-after', '20ms', '--debounce-max', '200ms',
    ], ['xds-plaintext', 'http']);
    gw = await startGateway({ xds: control.addresses['xds-plaintext']!, labels: 'istio=ingressgateway', name: 'edge' });
    await eventually('the gateway to route', async () => (await httpGet(gwPort, '/', 'flaky.example.com').catch(() => null))?.body === 'good');
  });

  after(async () => {
    for (const r of held) r.destroy();
    await gw?.stop();
    await control?.stop();
    for (const s of servers) s.closeAllConnections?.(), s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const admin = async (): Promise<string> => (await httpGet(gw.adminPort, '/clusters', 'admin')).body;

  it('an endpoint with 5 consecutive 5xx is ejected: every call then reaches the other one', async () => {
    // Round robin alternates: the bad endpoint has had its 5 errors within 10 calls (counting the set-up's calls),
    // and no more: the fifth ejects it.
    for (let i = 0; i < 12; i++) await httpGet(gwPort, '/', 'flaky.example.com');
    expect(seen.bad).to.equal(5);
    const before = seen.bad;
    for (let i = 0; i < 10; i++) expect((await httpGet(gwPort, '/', 'flaky.example.com')).body).to.equal('good');
    expect(seen.bad).to.equal(before);
    const clusters = await admin();
    expect(clusters).to.match(/outbound\|80\|\|flaky\.example\.com::127\.0\.0\.1:\d+::health_flags::healthy\/failed_outlier_check/);
    expect(clusters).to.contain('outbound|80||flaky.example.com::outlier::ejections_total::1');
    expect(clusters).to.contain('outbound|80||flaky.example.com::outlier::ejections_active::1');
  });

  it('once healthy it comes back after the ejection time (re-evaluated at the interval)', async () => {
    badFails = false;
    const before = seen.bad;
    await eventually('the ejected endpoint to take calls again', async () => {
      await httpGet(gwPort, '/', 'flaky.example.com');
      return seen.bad > before;
    }, 15_000);
    expect(await admin()).to.contain('outbound|80||flaky.example.com::outlier::ejections_active::0');
  });

  it('connectionPool: with one connection and one pending request, a third concurrent request gets 503 UO at once', async () => {
    const first = httpGet(gwPort, '/1', 'slow.example.com');
    await eventually('the first request to reach the backend', () => held.length === 1);
    const second = httpGet(gwPort, '/2', 'slow.example.com');
    // The second waits for the one connection; give the proxy a moment to queue it.
    await new Promise((r) => setTimeout(r, 200));
    const third = await httpGet(gwPort, '/3', 'slow.example.com');
    expect(third.status).to.equal(503);
    expect(third.body).to.contain('overflow');
    expect(held).to.have.length(1);
    for (const r of held.splice(0)) r.end('done');
    expect((await first).status).to.equal(200);
    await eventually('the queued request to reach the backend', () => held.length === 1);
    for (const r of held.splice(0)) r.end('done');
    expect((await second).status).to.equal(200);
    expect(await admin()).to.match(/outbound\|80\|\|slow\.example\.com::upstream_rq_pending_overflow::1/);
  });

  it('the edge appends the client address to x-forwarded-for and overwrites a spoofed x-forwarded-proto', async () => {
    badFails = false;
    await eventually('a call to reach an endpoint with the forwarding headers', async () => {
      const r = await httpGet(gwPort, '/', 'flaky.example.com', { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' });
      return r.status === 200 && lastHeaders['x-forwarded-for'] !== undefined;
    });
    expect(lastHeaders['x-forwarded-for']).to.equal('203.0.113.9, 127.0.0.1');
    expect(lastHeaders['x-forwarded-proto']).to.equal('http');
    expect(lastHeaders['x-envoy-external-address']).to.equal('127.0.0.1');
  });
});
