import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertTrellisExport, TrellisAdapter } from '@trellis/registry-adapters';
import { ShardView } from '@trellis/testing';

const entry = (host: string, endpoints: Record<string, unknown>[]): Record<string, unknown> => ({
  apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry',
  metadata: { name: host, namespace: 'shop', labels: { 'trellis.dev/exported-from': 'cluster-b' } },
  spec: { hosts: [host], ports: [{ number: 8080, name: 'http', protocol: 'HTTP' }], location: 'MESH_INTERNAL', resolution: 'STATIC', endpoints },
});
const exportOf = (version: string, items: unknown[]): Record<string, unknown> => ({
  apiVersion: 'trellis.dev/v1alpha1', kind: 'ServiceExport', version, clusterId: 'cluster-b', network: 'net-b', trustDomain: 'cluster.local', items,
});

describe('trellis registry: convertTrellisExport', () => {
  it('converts ServiceEntries with inline endpoints, marks them kind trellis, fills the Registry\'s network', () => {
    const c = convertTrellisExport(exportOf('v1', [
      entry('billing.shop.svc.cluster.local', [{ address: '10.0.0.1', locality: 'r/z', serviceAccount: 'billing' }, { address: '10.0.0.2', network: 'net-x' }]),
    ]), { shard: 'trellis:b', network: 'fallback', url: 'http://b' });
    expect(c.header).to.deep.equal({ version: 'v1', clusterId: 'cluster-b', network: 'net-b', trustDomain: 'cluster.local' });
    expect(c.services.map((s) => [s.hostname, s.source.kind, s.source.shard, s.source.ref])).to.deep.equal([
      ['billing.shop.svc.cluster.local', 'trellis', 'trellis:b', 'cluster-b:shop/billing.shop.svc.cluster.local'],
    ]);
    expect(c.workloads.map((w) => [w.address, w.network, w.locality, w.serviceAccount, w.ports.http])).to.deep.equal([
      ['10.0.0.1', 'fallback', 'r/z', 'billing', 8080],
      ['10.0.0.2', 'net-x', '', '', 8080],
    ]);
  });

  it('drops an invalid item with its path and keeps the rest; refuses what is not an export', () => {
    const c = convertTrellisExport(exportOf('v1', [entry('good.shop', []), { ...entry('bad.shop', []), spec: { hosts: [] } }]), { shard: 'trellis:b', url: 'http://b' });
    expect(c.services.map((s) => s.hostname)).to.deep.equal(['good.shop']);
    expect(c.problems).to.have.length.greaterThan(0);
    expect(c.problems[0]).to.deep.include({ file: 'http://b', document: 1 });
    expect(c.problems[0].path).to.match(/^spec\.hosts/);
    expect(() => convertTrellisExport({ kind: 'Status' }, { shard: 'trellis:b', url: 'http://b' })).to.throw('http://b: not a trellis.dev/v1alpha1 ServiceExport (kind "Status")');
  });

  it('refuses an address that is not an http(s) URL', () => {
    expect(() => new TrellisAdapter({ address: 'b:15014', name: 'b' })).to.throw(/must be http:\/\/ or https:\/\//);
    expect(() => new TrellisAdapter({ address: 'not a url', name: 'b' })).to.throw(/is not a URL/);
  });
});

describe('trellis registry: the adapter against a stub control plane', function () {
  this.timeout(20_000);
  let server: Server;
  let view: ShardView | undefined;
  let body: Record<string, unknown>;
  let failing = false;
  const seen: string[] = [];

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    seen.push(req.url ?? '');
    if (failing) {
      res.writeHead(500).end('broken');
      return;
    }
    const u = new URL(req.url ?? '/', 'http://x');
    const version = u.searchParams.get('version');
    if (version !== null && version === body.version) {
      // Long poll: hold briefly, then "not modified".
      setTimeout(() => res.writeHead(304).end(), 50);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const listen = async (s: Server): Promise<number> => {
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return (s.address() as AddressInfo).port;
  };

  afterEach(async () => {
    await view?.close();
    view = undefined;
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    failing = false;
    seen.length = 0;
  });

  it('takes a snapshot, long-polls with the version, goes stale keeping content on errors and recovers', async () => {
    body = exportOf('v1', [entry('billing.shop', [{ address: '10.0.0.1' }])]);
    server = createServer(handler);
    const port = await listen(server);
    view = new ShardView(new TrellisAdapter({ address: `http://127.0.0.1:${port}/`, name: 'cluster-b', waitMs: 1000, backoff: { initialMs: 20, maxMs: 50 } }));
    await view.until((v) => v.changes.length > 0);
    expect(view.changes[0].type).to.equal('snapshot');
    expect(view.endpointsOf('billing.shop').map((w) => w.address)).to.deep.equal(['10.0.0.1']);
    for (let i = 0; i < 100 && !seen.some((u) => u.includes('version=v1&wait=1s')); i++) await new Promise((r) => setTimeout(r, 20));
    expect(seen.some((u) => u.includes('/v1/export/services?version=v1&wait=1s')), seen.join(' ')).to.equal(true);

    body = exportOf('v2', [entry('billing.shop', [{ address: '10.0.0.1' }, { address: '10.0.0.2' }])]);
    await view.until((v) => v.endpointsOf('billing.shop').length === 2, 5000, 'the new version');

    failing = true;
    await view.until((v) => v.status?.state === 'stale', 5000, 'stale');
    expect(view.status?.lastError).to.contain(`http://127.0.0.1:${port}/v1/export/services`);
    expect(view.status?.lastError).to.contain('HTTP 500: broken');
    expect(view.endpointsOf('billing.shop')).to.have.length(2);
    failing = false;
    await view.until((v) => v.status?.state === 'synced', 5000, 'synced again');
  });

  it('verifies an https:// remote against caPem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-adapter-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=b', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'ignore' });
      const cert = readFileSync(join(dir, 'c.pem'), 'utf8');
      body = exportOf('v1', [entry('billing.shop', [{ address: '10.0.0.1' }])]);
      server = createHttpsServer({ cert, key: readFileSync(join(dir, 'k.pem'), 'utf8') }, handler);
      const port = await listen(server);
      // Without the CA: the certificate does not verify, the shard is stale with the TLS error.
      view = new ShardView(new TrellisAdapter({ address: `https://127.0.0.1:${port}`, name: 'b', backoff: { initialMs: 20, maxMs: 50 } }));
      await view.until((v) => v.status?.state === 'stale', 5000, 'stale without the CA');
      expect(view.status?.lastError).to.match(/self[- ]signed|certificate/i);
      await view.close();
      view = new ShardView(new TrellisAdapter({ address: `https://127.0.0.1:${port}`, name: 'b', caPem: cert }));
      await view.until((v) => v.endpointsOf('billing.shop').length === 1, 5000, 'synced over https');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
