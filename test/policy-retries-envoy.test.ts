/**
 * The retry fields Istio's API does not reach but Envoy config does (a fake ADS serves them straight to a proxy):
 * per_try_idle_timeout, retriable-4xx, retriable_headers, retriable_request_headers, and retries of a cluster
 * whose budget is the circuit breaker's max_retries. Status codes and attempt counts only, no timing.
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import diagnostics_channel from 'node:diagnostics_channel';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TYPE_URL } from '@trellis/api';
import { Proxy, nodeIdentity, silentLogger } from '@trellis/proxy';
import { FakeAdsServer } from '@trellis/testing';
import { hcm, listener, staticCluster } from './proxy-fixtures.js';

describe('policy: Envoy retry fields (per_try_idle_timeout, retriable-4xx, retriable headers) through a proxy', function () {
  this.timeout(30_000);
  let ads: FakeAdsServer;
  let proxy: Proxy;
  let backend: http.Server;
  const seen = new Map<string, string[]>();
  const open: http.ServerResponse[] = [];
  const flags: string[] = [];
  const onRequest = (m: unknown) => { flags.push((m as { responseFlags: string }).responseFlags); };

  before(async () => {
    backend = http.createServer((req, res) => {
      const [, kind, key] = (req.url ?? '').split('/');
      const list = seen.get(key) ?? [];
      list.push(String(req.headers['x-envoy-attempt-count']));
      seen.set(key, list);
      const n = list.length;
      switch (kind) {
        case 'conflict': res.writeHead(n === 1 ? 409 : 200).end(`attempt ${n}`); return;
        case 'header': res.writeHead(200, n === 1 ? { 'x-upstream-says': 'retry-me' } : {}).end(`attempt ${n}`); return;
        case 'stall-body': res.writeHead(200, { 'content-type': 'text/plain' }); res.write('part one;'); open.push(res); return;
        case 'stall-head': if (n === 1) open.push(res); else res.writeHead(200).end(`attempt ${n}`); return;
        default: res.writeHead(503).end(`attempt ${n}`);
      }
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const port = (backend.address() as AddressInfo).port;
    const policy = (extra: Record<string, unknown>) => ({ num_retries: { value: 2 }, retry_back_off: { base_interval: { nanos: 1_000_000 } }, ...extra });
    ads = await new FakeAdsServer().start();
    ads.set(TYPE_URL.listener, [listener('http', [{ filters: [hcm({ routeConfig: {
      name: 'inline',
      virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [
        { match: { prefix: '/conflict/' }, route: { cluster: 'b', retry_policy: policy({ retry_on: 'retriable-4xx' }) } },
        { match: { prefix: '/header/' }, route: { cluster: 'b', retry_policy: policy({ retry_on: 'retriable-headers', retriable_headers: [{ name: 'x-upstream-says', string_match: { exact: 'retry-me' } }] }) } },
        { match: { prefix: '/stall-body/' }, route: { cluster: 'b', retry_policy: policy({ retry_on: '5xx', per_try_idle_timeout: { nanos: 300_000_000 } }) } },
        { match: { prefix: '/stall-head/' }, route: { cluster: 'b', retry_policy: policy({ retry_on: 'reset', per_try_idle_timeout: { nanos: 300_000_000 } }) } },
        { match: { prefix: '/get-only/' }, route: { cluster: 'b', retry_policy: policy({ retry_on: '5xx', retriable_request_headers: [{ name: ':method', string_match: { exact: 'GET' } }] }) } },
        { match: { prefix: '/none/' }, route: { cluster: 'b', retry_policy: policy({ retry_on: '5xx', num_retries: { value: 0 } }) } },
      ] }],
    } })] }])]);
    ads.set(TYPE_URL.cluster, [staticCluster('b', [port])]);
    proxy = new Proxy({
      node: nodeIdentity({ mode: 'sidecar', ip: '127.0.0.1', workloadName: 'client', namespace: 'default', serviceAccount: 'client', labels: {}, clusterId: 'c1', network: '' }),
      xds: { target: ads.address, credentials: grpc.credentials.createInsecure() }, sdsSocket: null, logger: silentLogger(),
      ports: { outbound: 0, inbound: 0, admin: 0, prometheus: 0, health: 0 }, bindAddress: '127.0.0.1', adminAddress: '127.0.0.1', statusAddress: '127.0.0.1',
    });
    await proxy.start();
    await proxy.whenReady();
    diagnostics_channel.subscribe('trellis:proxy:request', onRequest);
  });

  after(async () => {
    diagnostics_channel.unsubscribe('trellis:proxy:request', onRequest);
    for (const r of open.splice(0)) r.destroy();
    await proxy?.close();
    await ads?.stop();
    backend?.closeAllConnections();
    await new Promise<void>((r) => (backend ? backend.close(() => r()) : r()));
  });

  let seq = 0;
  const call = (path: string, method = 'GET'): Promise<{ status: number; body: string; error: string | null }> => new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: proxy.listeners.port('http'), path: `${path}${++seq}`, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, error: null }));
      res.on('error', (e) => resolve({ status: res.statusCode!, body, error: e.message }));
    });
    req.on('error', (e) => resolve({ status: 0, body: '', error: e.message }));
    req.end(method === 'POST' ? 'x' : undefined);
  });
  const attempts = () => seen.get(String(seq));

  it('retriable-4xx retries a 409; every try carries x-envoy-attempt-count', async () => {
    const r = await call('/conflict/');
    expect(r).to.deep.include({ status: 200, body: 'attempt 2' });
    expect(attempts()).to.deep.equal(['1', '2']);
  });

  it('retriable-headers retries a response that matches', async () => {
    const r = await call('/header/');
    expect(r).to.deep.include({ status: 200, body: 'attempt 2' });
  });

  it('per_try_idle_timeout before the head: the silent try is cancelled and retried', async () => {
    const r = await call('/stall-head/');
    expect(r).to.deep.include({ status: 200, body: 'attempt 2' });
  });

  it('per_try_idle_timeout after the head: a stalled body resets the client\'s response (UT), no retry', async () => {
    flags.length = 0;
    const r = await call('/stall-body/');
    expect(r.status).to.equal(200);
    expect(r.error).to.not.equal(null);
    expect(r.body).to.equal('part one;');
    expect(attempts()).to.deep.equal(['1']);
    for (let i = 0; i < 100 && !flags.length; i++) await new Promise((res) => setTimeout(res, 10));
    expect(flags.at(-1)).to.equal('UT');
  });

  it('retriable_request_headers: a GET is retried, a POST is not', async () => {
    expect((await call('/get-only/')).status).to.equal(503);
    expect(attempts()).to.deep.equal(['1', '2', '3']);
    expect((await call('/get-only/', 'POST')).status).to.equal(503);
    expect(attempts()).to.deep.equal(['undefined']);
  });

  it('num_retries 0: one try and no x-envoy-attempt-count', async () => {
    expect((await call('/none/')).status).to.equal(503);
    expect(attempts()).to.deep.equal(['undefined']);
  });
});
