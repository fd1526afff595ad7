import { expect } from 'chai';
import { TrellisError } from '@trellis/model';
import { Aggregate } from '../src/aggregate/aggregate.js';
import { debugRoutes } from '../src/http/debug-routes.js';
import { ControlMetrics } from '../src/http/metrics.js';
import { HttpServer, sendJson, type HttpRoute } from '../src/http/server.js';
import { SnapshotController } from '../src/snapshot/controller.js';
import { AdsServer } from '../src/xds/ads-server.js';
import { XDS_CHANNELS } from '../src/xds/events.js';
import { snapshotChange, status, svc } from './aggregate-fixtures.js';

describe('control HTTP server', () => {
  const servers: HttpServer[] = [];
  afterEach(async () => { for (const s of servers.splice(0)) await s.close(); });

  async function serve(routes: HttpRoute[]): Promise<string> {
    const s = new HttpServer(routes);
    servers.push(s);
    const a = await s.listen('127.0.0.1', 0);
    return `http://127.0.0.1:${a.port}`;
  }

  it('mounts routes with parameters and JSON bodies; errors are {code, message}', async () => {
    const url = await serve([
      { method: 'POST', path: '/v1/tokens/:id', handler: (_q, res, params, body) => sendJson(res, 201, { id: params.id, body }) },
      { method: 'GET', path: '/boom', handler: () => { throw new TrellisError('TRELLIS_ERR_HTTP_BODY', 'bad'); } },
    ]);
    const ok = await fetch(`${url}/v1/tokens/abc`, { method: 'POST', body: JSON.stringify({ ttl: 5 }) });
    expect(ok.status).to.equal(201);
    expect(await ok.json()).to.deep.equal({ id: 'abc', body: { ttl: 5 } });
    const badJson = await fetch(`${url}/v1/tokens/abc`, { method: 'POST', body: '{' });
    expect(badJson.status).to.equal(400);
    expect(await badJson.json()).to.deep.equal({ code: 'TRELLIS_ERR_HTTP_BODY', message: 'request body is not valid JSON' });
    const method = await fetch(`${url}/v1/tokens/abc`);
    expect(method.status).to.equal(405);
    expect((await method.json() as { code: string }).code).to.equal('TRELLIS_ERR_METHOD');
  });

  it('rejects a port in use with TRELLIS_ERR_LISTEN', async () => {
    const url = await serve([]);
    const port = Number(new URL(url).port);
    const second = new HttpServer([]);
    try {
      await second.listen('127.0.0.1', port);
      expect.fail('listen should fail');
    } catch (err) {
      expect((err as TrellisError).code).to.equal('TRELLIS_ERR_LISTEN');
      expect((err as Error).message).to.equal(`127.0.0.1:${port} is already in use`);
    }
  });

  it('serves /ready (503 with a reason, then 200), /metrics, /debug/registryz, /debug/conflicts, /debug/syncz', async () => {
    let ctl: SnapshotController | undefined;
    const agg = new Aggregate({ onChange: () => ctl?.changed() });
    ctl = new SnapshotController({ aggregate: agg, meshDefaults: {}, debounceAfterMs: 0, debounceMaxMs: 0 });
    const ads = new AdsServer({ generators: {}, snapshots: { current: () => ctl!.current?.snapshot }, identifier: 't' });
    const metrics = new ControlMetrics({
      connectedProxies: () => ads.connectionCount, shards: () => agg.view([]).shards, conflicts: () => agg.view(['file', 'consul']).conflicts.length,
      configErrors: () => agg.view([]).shards.reduce((n, s) => n + s.status.problems.length, 0),
    }, { defaultMetrics: false });
    const url = await serve(debugRoutes({
      state: () => ctl!.current, liveView: () => agg.view(['file', 'consul']), notReadyReason: () => ctl!.notReadyReason(), ads, metrics, version: '9.9.9',
    }));
    agg.addShard('file:/c', 'file');
    agg.addShard('consul:dc1', 'consul');
    const notReady = await fetch(`${url}/ready`);
    expect(notReady.status).to.equal(503);
    expect(await notReady.json()).to.deep.equal({ code: 'TRELLIS_ERR_NOT_READY', message: 'waiting for the first snapshot of shard(s): file:/c, consul:dc1' });
    agg.apply('file:/c', snapshotChange('file:/c', 'file', [svc('a.test', 'file:/c', 'file', { resolution: 'DNS' })]));
    agg.apply('consul:dc1', { ...snapshotChange('consul:dc1', 'consul', [svc('a.test', 'consul:dc1', 'consul')]), status: status('consul:dc1', 'consul', 'stale', { lastError: 'ECONNREFUSED', staleSince: '2026-01-01T00:00:00Z' }) });
    ctl.buildNow();
    expect((await fetch(`${url}/ready`)).status).to.equal(200);
    const reg = await (await fetch(`${url}/debug/registryz`)).json() as { shards: { shard: string; state: string; lastError?: string }[]; services: { hostname: string; shards: string[]; vip: string }[] };
    expect(reg.shards.map((s) => [s.shard, s.state, s.lastError])).to.deep.equal([['consul:dc1', 'stale', 'ECONNREFUSED'], ['file:/c', 'synced', undefined]]);
    expect(reg.services[0]).to.deep.include({ hostname: 'a.test', shards: ['file:/c', 'consul:dc1'] });
    expect(reg.services[0].vip).to.match(/^240\.240\./);
    const conflicts = await (await fetch(`${url}/debug/conflicts`)).json() as { conflicts: { field: string; winner: string }[] };
    expect(conflicts.conflicts).to.deep.equal([{ hostname: 'a.test', namespace: 'default', field: 'resolution', winner: 'file:/c', values: [{ shard: 'file:/c', value: 'DNS' }, { shard: 'consul:dc1', value: 'STATIC' }] }]);
    const syncz = await (await fetch(`${url}/debug/syncz`)).json() as { controlPlaneVersion: string; proxies: unknown[] };
    expect(syncz).to.deep.include({ controlPlaneVersion: '9.9.9', proxies: [] });
    XDS_CHANNELS.push.publish({ proxy: 'p', type: 'type.googleapis.com/envoy.config.cluster.v3.Cluster', version: 'x', resources: 1, ms: 2 });
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).to.match(/pilot_xds_pushes\{type="cds"\} 1/);
    expect(text).to.match(/trellis_registry_shard_state\{shard="consul:dc1",kind="consul",state="stale"\} 1/);
    expect(text).to.match(/trellis_registry_conflicts 1/);
    expect(text).to.match(/pilot_xds 0/);
    const dump = await fetch(`${url}/debug/config_dump`);
    expect(dump.status).to.equal(400);
    metrics.close();
    ctl.close();
  });
});
