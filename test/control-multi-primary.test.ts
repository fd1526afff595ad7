/**
 * Several control planes, one mesh (issue 9 item 5), through two real trellis-control processes on loopback: each
 * reads the other's `GET /v1/export/services` through a `trellis` Registry (multi-primary). A learns B's service
 * with B's network, locality and service account; nothing learned is exported again (no loops); B stops → A keeps
 * the entries and `trellisctl registry status` says stale; B comes back → synced again.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, runCtl, startControl, type ControlProcess } from './processes.js';

const billingOnB = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: billing, namespace: shop}
spec:
  hosts: [billing.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
    - {address: 10.68.2.10, labels: {app: billing, version: v2}, locality: eu-west/zone-b, serviceAccount: billing}
    - {address: 10.68.2.11, labels: {app: billing, version: v2}, locality: eu-west/zone-b, serviceAccount: billing, network: net-b-edge}
`;
const ordersOnA = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: orders, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  endpoints: [{address: 10.68.1.20, serviceAccount: orders}]
`;
const registry = (name: string, clusterId: string, address: string): string => `apiVersion: trellis.dev/v1alpha1
kind: Registry
metadata: {name: ${name}, namespace: trellis-system}
spec: {type: trellis, address: "${address}", clusterId: ${clusterId}}
`;

interface Endpointz { services: { hostname: string; endpoints: { address: string; network: string; locality: string; serviceAccount: string; labels: Record<string, string>; shard: string }[] }[] }
interface Export { clusterId: string; network: string; items: { metadata: { labels: Record<string, string> }; spec: { hosts: string[]; endpoints: { address: string }[] } }[] }

const getJson = async <T>(url: string): Promise<T> => {
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
  return (await r.json()) as T;
};

describe('several control planes, one mesh: the trellis registry reads another control plane\'s export', function () {
  this.timeout(90_000);
  let dir: string;
  let a: ControlProcess;
  let b: ControlProcess | undefined;
  let bHttp: string;

  const startB = (listenHttp: string): Promise<ControlProcess> => startControl([
    '--config-dir', join(dir, 'b'), '--state-dir', join(dir, 'b-state'), '--listen-xds', 'off', '--listen-http', listenHttp,
    '--cluster-id', 'cluster-b', '--network', 'net-b', '--debounce-after', '20ms', '--listen-webhook', '127.0.0.1:0', '--ca-dir', join(dir, 'b-ca'),
  ], ['http', 'webhook']);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-multi-primary-'));
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    writeFileSync(join(dir, 'b', 'billing.yaml'), billingOnB);
    writeFileSync(join(dir, 'a', 'orders.yaml'), ordersOnA);
    // B's CA: a root of its own (a shared root would be the same root-cert.pem everywhere).
    mkdirSync(join(dir, 'b-ca'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '2',
      '-subj', '/O=cluster.local/CN=Root B', '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { cwd: join(dir, 'b-ca'), stdio: 'ignore' });
    chmodSync(join(dir, 'b-ca', 'ca-key.pem'), 0o600);
    copyFileSync(join(dir, 'b-ca', 'ca-cert.pem'), join(dir, 'b-ca', 'root-cert.pem'));
    b = await startB('127.0.0.1:0');
    bHttp = b.addresses.http;
    writeFileSync(join(dir, 'a', 'remote-b.yaml'), registry('cluster-b', 'cluster-b', `http://${bHttp}`));
    a = await startControl([
      '--config-dir', join(dir, 'a'), '--state-dir', join(dir, 'a-state'), '--listen-xds', 'off', '--listen-http', '127.0.0.1:0',
      '--cluster-id', 'cluster-a', '--network', 'net-a', '--debounce-after', '20ms',
    ], ['http']);
    // Multi-primary: B reads A too (its config dir is watched, so the Registry is picked up live).
    writeFileSync(join(dir, 'b', 'remote-a.yaml'), registry('cluster-a', 'cluster-a', `http://${a.addresses.http}`));
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('A learns B\'s service with its endpoints\' network, locality, labels and service account', async () => {
    const billing = await eventually('billing in A\'s endpointz', async () => {
      const e = await getJson<Endpointz>(`http://${a.addresses.http}/debug/endpointz`);
      return e.services.find((s) => s.hostname === 'billing.shop.svc.cluster.local' && s.endpoints.length === 2);
    });
    const eps = billing.endpoints.slice().sort((x, y) => x.address.localeCompare(y.address));
    expect(eps.map((e) => [e.address, e.network, e.locality, e.serviceAccount, e.shard])).to.deep.equal([
      ['10.68.2.10', 'net-b', 'eu-west/zone-b', 'billing', 'trellis:cluster-b'],
      ['10.68.2.11', 'net-b-edge', 'eu-west/zone-b', 'billing', 'trellis:cluster-b'],
    ]);
    expect(eps[0].labels).to.deep.equal({ app: 'billing', version: 'v2' });
  });

  it('B learns A\'s service, and neither exports what it learned (no loops)', async () => {
    await eventually('orders in B\'s endpointz', async () => {
      const e = await getJson<Endpointz>(`http://${bHttp}/debug/endpointz`);
      return e.services.some((s) => s.hostname === 'orders.shop.svc.cluster.local' && s.endpoints.some((w) => w.shard === 'trellis:cluster-a'));
    });
    const exA = await getJson<Export>(`http://${a.addresses.http}/v1/export/services`);
    const exB = await getJson<Export>(`http://${bHttp}/v1/export/services`);
    expect(exA.clusterId).to.equal('cluster-a');
    expect(exA.items.map((i) => i.spec.hosts[0])).to.deep.equal(['orders.shop.svc.cluster.local']);
    expect(exB.items.map((i) => i.spec.hosts[0])).to.deep.equal(['billing.shop.svc.cluster.local']);
    expect(exB.items[0].metadata.labels['trellis.dev/exported-from']).to.equal('cluster-b');
  });

  it('long poll: an unchanged export answers 304 after the wait, a change answers at once', async () => {
    const first = await fetch(`http://${bHttp}/v1/export/services`);
    const etag = first.headers.get('etag')!;
    const version = ((await first.json()) as { version: string }).version;
    expect(etag).to.equal(`"${version}"`);
    const unchanged = await fetch(`http://${bHttp}/v1/export/services?version=${version}&wait=1s`);
    expect(unchanged.status).to.equal(304);
    const waiting = fetch(`http://${bHttp}/v1/export/services?version=${version}&wait=30s`);
    await new Promise((r) => setTimeout(r, 200));
    writeFileSync(join(dir, 'b', 'billing.yaml'), billingOnB.replace('10.68.2.11', '10.68.2.12'));
    const changed = await waiting;
    expect(changed.status).to.equal(200);
    const body = (await changed.json()) as Export & { version: string };
    expect(body.version).to.not.equal(version);
    expect(body.items[0].spec.endpoints.map((e) => e.address)).to.include('10.68.2.12');
    // A follows through its own long poll.
    await eventually('A sees the new endpoint', async () => {
      const e = await getJson<Endpointz>(`http://${a.addresses.http}/debug/endpointz`);
      return e.services.find((s) => s.hostname === 'billing.shop.svc.cluster.local')?.endpoints.some((w) => w.address === '10.68.2.12');
    });
  });

  it('reads over HTTPS (B\'s --listen-webhook, certificate from B\'s CA) verified with caBundle', async () => {
    writeFileSync(join(dir, 'a', 'remote-b-tls.yaml'), `${registry('cluster-b-tls', 'cluster-b-tls', `https://${b!.addresses.webhook}`)}`.replace('clusterId: cluster-b-tls}', `clusterId: cluster-b-tls, caBundle: ${join(dir, 'b-ca', 'root-cert.pem')}}`));
    const billing = await eventually('billing from the https shard', async () => {
      const e = await getJson<Endpointz>(`http://${a.addresses.http}/debug/endpointz`);
      const s = e.services.find((x) => x.hostname === 'billing.shop.svc.cluster.local');
      return s?.endpoints.some((w) => w.shard === 'trellis:cluster-b-tls') ? s : undefined;
    });
    expect(billing.endpoints.filter((w) => w.shard === 'trellis:cluster-b-tls')).to.have.length(2);
    rmSync(join(dir, 'a', 'remote-b-tls.yaml'));
    await eventually('the https shard dropped', async () => {
      const r = await getJson<{ shards: { shard: string }[] }>(`http://${a.addresses.http}/debug/registryz`);
      return !r.shards.some((s) => s.shard === 'trellis:cluster-b-tls');
    });
  });

  it('B stops: A keeps the entries and says stale; B comes back: synced again', async () => {
    await b!.stop();
    b = undefined;
    const stale = await eventually('A reports the trellis shard stale', async () => {
      const r = await runCtl(['registry', 'status', '--control', `http://${a.addresses.http}`]);
      const line = r.stdout.split('\n').find((l) => l.startsWith('trellis:cluster-b'));
      return line?.includes('stale since') ? line : undefined;
    });
    expect(stale).to.match(/trellis:cluster-b\s+trellis\s+stale since \S+\s+1\s+2\s+0/);
    expect(stale).to.contain('ECONNREFUSED');
    const ready = await fetch(`http://${a.addresses.http}/ready`);
    expect(ready.status).to.equal(200);
    const e = await getJson<Endpointz>(`http://${a.addresses.http}/debug/endpointz`);
    expect(e.services.find((s) => s.hostname === 'billing.shop.svc.cluster.local')?.endpoints).to.have.length(2);

    b = await startB(bHttp);
    await eventually('A reports the trellis shard synced', async () => {
      const r = await runCtl(['registry', 'status', '--control', `http://${a.addresses.http}`, '-o', 'json']);
      const shards = (JSON.parse(r.stdout) as { shards: { shard: string; state: string }[] }).shards;
      return shards.find((s) => s.shard === 'trellis:cluster-b')?.state === 'synced';
    }, 20_000);
  });
});
