import { createRequire } from 'node:module';
import { expect } from 'chai';
import { FakeEureka } from '@trellis/testing';

interface EurekaClient {
  start(cb: (err?: Error) => void): void;
  stop(cb: (err?: Error) => void): void;
  getInstancesByAppId(app: string): { instanceId: string; status: string; metadata?: Record<string, string> }[];
  on(event: string, fn: () => void): void;
}
const { Eureka } = createRequire(import.meta.url)('eureka-js-client') as { Eureka: new (config: unknown) => EurekaClient };
const silent = { level() {}, debug() {}, info() {}, warn() {}, error() {} };

function until(pred: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = (): void => {
      if (pred()) return resolve();
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

describe('fake Eureka, driven by eureka-js-client', () => {
  let fake: FakeEureka;
  let client: EurekaClient | undefined;
  beforeEach(async () => {
    fake = await new FakeEureka().start();
  });
  afterEach(async () => {
    if (client) await new Promise<void>((resolve) => client!.stop(() => resolve()));
    client = undefined;
    await fake.close();
  });

  const newClient = (shouldUseDelta: boolean): EurekaClient =>
    new Eureka({
      logger: silent,
      shouldUseDelta,
      instance: {
        app: 'jqservice',
        instanceId: 'jq-1',
        hostName: 'localhost',
        ipAddr: '127.0.0.1',
        port: { $: 8080, '@enabled': true },
        vipAddress: 'jq.test.local',
        statusPageUrl: 'http://localhost:8080/info',
        dataCenterInfo: { '@class': 'com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo', name: 'MyOwn' },
        metadata: { 'istio.protocol': 'http' },
      },
      eureka: { host: '127.0.0.1', port: fake.port, servicePath: '/eureka/v2/apps/', heartbeatInterval: 50, registryFetchInterval: 50, maxRetries: 0 },
    });

  it('registers (204), heartbeats, fetches the registry, re-registers after a 404 heartbeat, deregisters on stop', async () => {
    client = newClient(false);
    let registered = 0;
    client.on('registered', () => registered++);
    await new Promise<void>((resolve, reject) => client!.start((err) => (err ? reject(err) : resolve())));
    expect(registered).to.equal(1);
    expect(fake.instance('JQSERVICE', 'jq-1')).to.deep.include({ app: 'JQSERVICE', ipAddr: '127.0.0.1', status: 'UP' });
    await until(() => (fake.heartbeats.get('JQSERVICE/jq-1') ?? 0) >= 2, 'heartbeats');
    // the registry fetch (GET /apps/ with Accept: application/json) sees itself
    await until(() => client!.getInstancesByAppId('JQSERVICE').length === 1, 'registry fetch');
    expect(fake.requests.some((r) => r.method === 'GET' && r.url === '/eureka/v2/apps/' && r.accept === 'application/json')).to.equal(true);

    fake.register({ app: 'other', instanceId: 'o1', ipAddr: '10.0.0.9', port: 80 });
    await until(() => client!.getInstancesByAppId('OTHER').length === 1, 'other app');

    fake.deregister('JQSERVICE', 'jq-1'); // lease lost: next heartbeat is a 404, the client registers again
    await until(() => registered >= 2 && fake.instance('JQSERVICE', 'jq-1') !== undefined, 're-registration');

    await new Promise<void>((resolve) => client!.stop(() => resolve()));
    client = undefined;
    expect(fake.instance('JQSERVICE', 'jq-1')).to.equal(undefined);
  });

  it('serves deltas the client merges (ADDED, MODIFIED via status override, DELETED), also with single objects', async () => {
    await fake.close();
    fake = await new FakeEureka({ singleObjects: true }).start();
    client = newClient(true);
    await new Promise<void>((resolve, reject) => client!.start((err) => (err ? reject(err) : resolve())));
    fake.register({ app: 'svc', instanceId: 's1', ipAddr: '10.0.0.1', port: 80 });
    await until(() => client!.getInstancesByAppId('SVC').length === 1, 'ADDED via delta');
    expect(fake.requests.some((r) => r.url === '/eureka/v2/apps/delta')).to.equal(true);
    // an OUT_OF_SERVICE override over HTTP, as operators do it
    const put = await fetch(`${fake.serviceUrl}/apps/SVC/s1/status?value=OUT_OF_SERVICE`, { method: 'PUT' });
    expect(put.status).to.equal(200);
    expect(fake.instance('SVC', 's1')).to.deep.include({ status: 'OUT_OF_SERVICE', overriddenstatus: 'OUT_OF_SERVICE' });
    const meta = await fetch(`${fake.serviceUrl}/apps/SVC/s1/metadata?version=v2`, { method: 'PUT' });
    expect(meta.status).to.equal(200);
    const del = await fetch(`${fake.serviceUrl}/apps/SVC/s1/status?value=UP`, { method: 'DELETE' });
    expect(del.status).to.equal(200);
    expect(fake.instance('SVC', 's1')).to.deep.include({ status: 'UP', overriddenstatus: 'UNKNOWN', metadata: { version: 'v2' } });
    fake.deregister('SVC', 's1');
    await until(() => client!.getInstancesByAppId('SVC').length === 0, 'DELETED via delta');
  });

  it('answers the REST surface: apps/{APP}, apps/{APP}/{id}, 404 heartbeat for an unknown instance, delta retention', async () => {
    let now = 1_000_000;
    await fake.close();
    fake = await new FakeEureka({ basePath: '/eureka', now: () => now }).start();
    const reg = await fetch(`${fake.serviceUrl}/apps/WEB`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instance: { instanceId: 'w1', app: 'WEB', ipAddr: '10.0.0.1', hostName: 'w1', port: { $: 80, '@enabled': 'true' }, dataCenterInfo: { name: 'MyOwn' } } }),
    });
    expect(reg.status).to.equal(204);
    const app = (await (await fetch(`${fake.serviceUrl}/apps/WEB`, { headers: { accept: 'application/json' } })).json()) as { application: { instance: unknown[] } };
    expect(app.application.instance).to.have.length(1);
    const one = (await (await fetch(`${fake.serviceUrl}/apps/WEB/w1`)).json()) as { instance: { port: unknown } };
    expect(one.instance.port).to.deep.equal({ $: 80, '@enabled': 'true' });
    expect((await fetch(`${fake.serviceUrl}/apps/WEB/nope`, { method: 'PUT' })).status).to.equal(404);
    const delta = async (): Promise<{ applications: { apps__hashcode: string; application: unknown[] } }> =>
      (await (await fetch(`${fake.serviceUrl}/apps/delta`)).json()) as { applications: { apps__hashcode: string; application: unknown[] } };
    expect((await delta()).applications).to.deep.include({ apps__hashcode: 'UP_1_' });
    expect((await delta()).applications.application).to.have.length(1);
    now += 181_000; // past the ~3 minute retention
    expect((await delta()).applications.application).to.have.length(0);
  });
});
