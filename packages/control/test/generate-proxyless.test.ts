/**
 * The resources served to a proxyless gRPC client must pass grpc-js-xds's own validators (the code that decides
 * ACK or NACK in the real client): Listener (API listener with inline route config), Cluster, ClusterLoadAssignment.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { encodeAny, TYPE_URL } from '@trellis/api';
import { generateAll } from '../src/generate/index.js';
import { loadFixture } from './golden/harness.js';

const require = createRequire(import.meta.url);
const base = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'build/src/xds-resource-type');

interface ResourceType {
  decode(context: unknown, resource: { type_url: string; value: Uint8Array }): { name: string; value?: unknown; error?: string };
}
function resourceType(file: string, cls: string): ResourceType {
  const mod = require(join(base, file)) as Record<string, { get(): ResourceType }>;
  const c = mod[cls];
  if (c === undefined) throw new Error(`${cls} not found in ${file}`);
  return c.get();
}

// The validators look HTTP filters up in grpc-js-xds's filter registry, which `register()` fills; register just the
// filters (router, fault) instead of the whole xds resolver.
for (const f of ['router-filter.js', 'fault-injection-filter.js']) (require(join(base, '..', 'http-filter', f)) as { setup(): void }).setup();

const here = dirname(fileURLToPath(import.meta.url));
const context = { bootstrap: { certificateProviders: {}, servers: [], node: {}, authorities: {} } };

describe('generate: proxyless gRPC resources pass grpc-js-xds validation', () => {
  const validators: [string, ResourceType][] = [
    [TYPE_URL.listener, resourceType('listener-resource-type.js', 'ListenerResourceType')],
    [TYPE_URL.cluster, resourceType('cluster-resource-type.js', 'ClusterResourceType')],
    [TYPE_URL.endpoint, resourceType('endpoint-resource-type.js', 'EndpointResourceType')],
  ];
  for (const fixture of ['proxyless-grpc', 'ds24-routing', 'bookinfo']) {
    it(`${fixture}: every listener, cluster and endpoint assignment validates`, () => {
      const { snapshot, proxies } = loadFixture(join(here, 'golden', fixture, 'input.yaml'));
      const proxy = { ...(proxies[0] ?? (() => { throw new Error('no proxy'); })()), type: 'proxyless' as const };
      const all = generateAll(snapshot, proxy);
      let checked = 0;
      for (const [url, validator] of validators) {
        const resources = all[url as keyof typeof all];
        expect(resources.length, `${fixture}: no ${url}`).to.be.greaterThan(0);
        for (const r of resources) {
          const result = validator.decode(context, encodeAny(url, r.body as Record<string, unknown>));
          expect(result.error ?? "", `${r.name}`).to.equal("");
          expect(result.name).to.equal(r.name);
          checked++;
        }
      }
      expect(checked).to.be.greaterThan(2);
    });
  }

  it('serves the listener names a client dials (xds:///HOST:PORT) with an inline route to the subset clusters', () => {
    const { snapshot, proxies } = loadFixture(join(here, 'golden', 'proxyless-grpc', 'input.yaml'));
    const proxy = proxies[0];
    if (proxy === undefined) throw new Error('no proxy');
    const listeners = generateAll(snapshot, proxy)[TYPE_URL.listener];
    expect(listeners.map((l) => l.name)).to.include.members(['echo.default.svc.cluster.local:7070', 'echo:7070']);
    const hcm = (listeners[0]?.body.api_listener as { api_listener: Record<string, unknown> }).api_listener;
    const vhosts = (hcm.route_config as { virtual_hosts: { domains: string[]; routes: { route: Record<string, unknown> }[] }[] }).virtual_hosts;
    expect(vhosts[0]?.domains).to.include('echo:7070');
    expect(vhosts[0]?.routes[0]?.route.cluster).to.equal('outbound|7070|v2|echo.default.svc.cluster.local');
    expect(vhosts[0]?.routes[1]?.route.weighted_clusters).to.deep.equal({
      clusters: [
        { name: 'outbound|7070|v1|echo.default.svc.cluster.local', weight: { value: 80 } },
        { name: 'outbound|7070|v2|echo.default.svc.cluster.local', weight: { value: 20 } },
      ],
    });
  });
});
