/**
 * Listeners for proxyless gRPC clients (grpc-js-xds, grpc-go, grpc-java): a client dialing `xds:///HOST:PORT`
 * asks for the Listener named `HOST:PORT`. Each is an API listener whose HCM carries an inline route
 * configuration (so no RDS round trip is needed) with the service's virtual host and `http_filters: [router]`.
 * Names: every name hosts.ts gives for the service (FQDN, `name.ns`, `name.ns.svc`, the bare name in the client's
 * namespace, aliases; not the VIP) with the port. grpc-js-xds rejects listener filters, `use_original_dst`,
 * non-router-last filters, redirect/direct-response routes; none are produced here.
 */
import type { MeshService, ProxyNode, Snapshot } from '../../snapshot/types.js';
import { isHttpProtocol } from '../clusters.js';
import { hostNames } from '../hosts.js';
import { socketAddress } from '../proto.js';
import { meshVirtualHosts } from '../routes.js';
import { hcmConfig, routerOnly } from './filters.js';

type Obj = Record<string, unknown>;

export function proxylessListeners(snapshot: Snapshot, proxy: ProxyNode, services: readonly MeshService[]): Obj[] {
  const out: Obj[] = [];
  for (const ms of services) {
    for (const p of ms.service.ports) {
      if (!isHttpProtocol(p.protocol)) continue;
      const vhosts = meshVirtualHosts(snapshot, proxy, p.number, [ms], true);
      if (vhosts.length === 0) continue;
      const routeConfig = { name: `${ms.service.hostname}:${p.number}`, virtual_hosts: vhosts };
      const names = hostNames(ms, proxy, snapshot.mesh.domainSuffix).filter((n) => n !== ms.vip);
      for (const n of names) {
        out.push({
          name: `${n}:${p.number}`,
          address: socketAddress(ms.vip !== undefined && !ms.vip.includes('/') ? ms.vip : '0.0.0.0', p.number),
          api_listener: { api_listener: hcmConfig({ statPrefix: `${n}:${p.number}`, routeConfig, filters: routerOnly() }) },
        });
      }
    }
  }
  return out;
}
