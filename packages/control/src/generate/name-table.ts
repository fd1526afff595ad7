/**
 * NDS: the name table a node agent's DNS proxy answers from (`istio.networking.nds.v1.NameTable`, one resource
 * named ''), following Istio's `BuildNameTable`.
 *
 * - One entry per service the proxy may see (`visibleServices`: exportTo and Sidecar egress applied), keyed by its
 *   hostname. Wildcard hostnames are skipped (DNS cannot answer `*.example.com` from a table).
 * - `ips`: the service's VIP (`MeshService.vip`) and any further plain-IP addresses it declares; a service with
 *   none (headless) gets its endpoints' IPs, as Istio does for headless Kubernetes services. A service with no IP
 *   at all is left out, so the agent forwards its name to the upstream resolvers.
 * - `shortname`/`namespace` are set when the hostname is Kubernetes-style `<name>.<ns>.svc.<domainSuffix>`, as Istio
 *   does for Kubernetes services (Trellis does it whatever the registry, since a YAML or Consul service may use
 *   the same form). `alt_hosts` lists the names a client in the proxy's namespace may use besides the FQDN:
 *   `<name>.<ns>`, `<name>.<ns>.svc`, `<name>` when `<ns>` is the proxy's namespace, and the service's aliases.
 *   The agent adds its resolv.conf search-domain expansions itself.
 */
import { isIP } from 'node:net';
import type { SourceKind } from '@trellis/model';
import type { GeneratedResource, MeshService, ProxyNode, Snapshot } from '../snapshot/types.js';
import { visibleServices } from './scope.js';

/** Registry names as Istio spells them (`provider.ID`), for the `registry` field. */
const REGISTRY_NAME: Readonly<Record<SourceKind, string>> = Object.freeze({
  kubernetes: 'Kubernetes',
  file: 'File',
  consul: 'Consul',
  eureka: 'Eureka',
  trellis: 'External',
  control: 'External',
});

export interface NameInfo {
  readonly ips: readonly string[];
  readonly registry: string;
  readonly shortname: string;
  readonly namespace: string;
  readonly alt_hosts: readonly string[];
}

function serviceIps(s: MeshService): string[] {
  const ips = new Set<string>();
  if (s.vip !== undefined && isIP(s.vip) !== 0) ips.add(s.vip);
  for (const a of s.service.addresses) if (isIP(a) !== 0) ips.add(a);
  if (ips.size === 0 && s.service.resolution !== 'DNS' && s.service.resolution !== 'DNS_ROUND_ROBIN') {
    for (const e of s.endpoints) if (isIP(e.address) !== 0) ips.add(e.address);
  }
  return [...ips];
}

function nameInfo(s: MeshService, snapshot: Snapshot, proxy: ProxyNode, ips: readonly string[]): NameInfo {
  const host = s.service.hostname;
  const suffix = `.svc.${snapshot.mesh.domainSuffix}`;
  let shortname = '';
  let namespace = '';
  const alt: string[] = [];
  if (host.endsWith(suffix)) {
    const parts = host.slice(0, -suffix.length).split('.');
    if (parts.length === 2 && parts[0] !== '' && parts[1] !== '') {
      [shortname, namespace] = parts as [string, string];
      alt.push(`${shortname}.${namespace}`, `${shortname}.${namespace}.svc`);
      if (namespace === proxy.namespace) alt.push(shortname);
    }
  }
  for (const a of s.service.aliases) if (a !== host && !a.includes('*')) alt.push(a.toLowerCase());
  return Object.freeze({
    ips: Object.freeze([...ips]),
    registry: REGISTRY_NAME[s.service.source.kind] ?? s.service.source.kind,
    shortname,
    namespace,
    alt_hosts: Object.freeze([...new Set(alt)]),
  });
}

/** The `NameTable` body (proto field names) for one proxy. */
export function buildNameTable(snapshot: Snapshot, proxy: ProxyNode): { readonly table: Readonly<Record<string, NameInfo>> } {
  const table: Record<string, NameInfo> = {};
  const services = [...visibleServices(snapshot, proxy)].sort((a, b) => a.service.hostname.localeCompare(b.service.hostname));
  for (const s of services) {
    const host = s.service.hostname.toLowerCase();
    if (host.includes('*')) continue;
    const ips = serviceIps(s);
    if (ips.length === 0) continue;
    table[host] = nameInfo(s, snapshot, proxy, ips);
  }
  return Object.freeze({ table: Object.freeze(table) });
}

/** Generator for `TYPE_URL.nameTable`: exactly one resource, named '' as in Istio. */
export function generateNameTable(snapshot: Snapshot, proxy: ProxyNode): readonly GeneratedResource[] {
  return Object.freeze([Object.freeze({ name: '', body: buildNameTable(snapshot, proxy) })]);
}
