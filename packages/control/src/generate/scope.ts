/**
 * What a proxy may see: `exportTo` of services and config, the Sidecar resource's egress hosts, and the outbound
 * traffic policy. Istio's rules (istio/istio pilot/pkg/model/sidecar.go, push_context.go):
 *
 * - `exportTo` empty means exported everywhere; `.` the resource's own namespace; `*` all; `~` nowhere; other
 *   entries are namespace names.
 * - The Sidecar that applies to a proxy is the one in its namespace whose `workloadSelector` matches its labels,
 *   else the one in its namespace without a selector, else the one without a selector in the root namespace.
 * - Egress hosts are `namespace/dnsName`: namespace `*` (any), `.` (the proxy's), `~` (none) or a name; dnsName
 *   `*`, `*.suffix` or an exact host.
 */
import type { ServiceEntry } from '@trellis/model';
import type { ConfigOf, MeshService, ProxyNode, Snapshot } from '../snapshot/types.js';

/** Istio's default root namespace: mesh-wide Sidecar and PeerAuthentication resources live here. */
export const ROOT_NAMESPACE = 'istio-system';

export function labelsMatch(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined) return true;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Istio host matching: `*` matches anything; `*.foo.com` matches `bar.foo.com` and `a.bar.foo.com`; else exact. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    if (host.startsWith('*.')) return host.slice(1).endsWith(suffix);
    return host.endsWith(suffix);
  }
  return pattern === host;
}

/** Two host patterns overlap (either matches the other), as Istio uses to bind VS hosts to gateway hosts. */
export function hostsIntersect(a: string, b: string): boolean {
  return hostMatches(a, b) || hostMatches(b, a);
}

/**
 * Resolves a short host (`reviews`) to `reviews.<namespace>.svc.<domainSuffix>`; names with a dot, wildcards
 * and IPs are returned as written (Istio's ResolveShortnameToFQDN).
 */
export function resolveHost(host: string, namespace: string, domainSuffix: string): string {
  if (host === '*' || host.includes('.') || host.includes(':')) return host;
  return `${host}.${namespace}.svc.${domainSuffix}`;
}

export function exportedTo(exportTo: readonly string[] | undefined, ownNamespace: string, viewer: string): boolean {
  if (exportTo === undefined || exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || (e === '.' && ownNamespace === viewer) || e === viewer);
}

export type Sidecar = ConfigOf<'Sidecar'>;

export function sidecarFor(snapshot: Snapshot, proxy: ProxyNode): Sidecar | undefined {
  const inNs = snapshot.config.sidecars.filter((s) => s.metadata.namespace === proxy.namespace);
  const selected = inNs.find((s) => s.spec.workloadSelector !== undefined && labelsMatch(s.spec.workloadSelector.labels, proxy.labels));
  if (selected !== undefined) return selected;
  const nsWide = inNs.find((s) => s.spec.workloadSelector === undefined);
  if (nsWide !== undefined) return nsWide;
  return snapshot.config.sidecars.find((s) => s.metadata.namespace === ROOT_NAMESPACE && s.spec.workloadSelector === undefined);
}

/** Whether an egress host entry (`ns/host`) admits a host in a namespace, seen from a proxy in `proxyNamespace`. */
export function egressAdmits(entry: string, host: string, namespace: string, proxyNamespace: string): boolean {
  const slash = entry.indexOf('/');
  const ns = slash < 0 ? '*' : entry.slice(0, slash);
  const dns = slash < 0 ? entry : entry.slice(slash + 1);
  if (ns === '~') return false;
  if (ns !== '*' && (ns === '.' ? proxyNamespace : ns) !== namespace) return false;
  return hostMatches(dns, host);
}

/** Outbound traffic policy for the proxy: the Sidecar's when set, else the mesh's. */
export function outboundPolicy(snapshot: Snapshot, proxy: ProxyNode): 'ALLOW_ANY' | 'REGISTRY_ONLY' {
  return sidecarFor(snapshot, proxy)?.spec.outboundTrafficPolicy?.mode ?? snapshot.mesh.outboundTrafficPolicy;
}

function serviceVisible(service: ServiceEntry, proxy: ProxyNode, egressHosts: readonly string[] | undefined): boolean {
  if (!exportedTo(service.exportTo, service.namespace, proxy.namespace)) return false;
  if (egressHosts === undefined) return true;
  return egressHosts.some((e) => egressAdmits(e, service.hostname, service.namespace, proxy.namespace));
}

/**
 * The services a proxy may reach: exported to its namespace and admitted by its Sidecar's egress hosts (gateways
 * ignore Sidecars, as in Istio). When two namespaces define the same hostname, the one in the proxy's namespace
 * wins, then the first by namespace order.
 */
export function visibleServices(snapshot: Snapshot, proxy: ProxyNode): readonly MeshService[] {
  const sidecar = proxy.type === 'router' ? undefined : sidecarFor(snapshot, proxy);
  const egressHosts = sidecar?.spec.egress === undefined ? undefined : sidecar.spec.egress.flatMap((e) => e.hosts);
  const byHost = new Map<string, MeshService>();
  for (const s of snapshot.services) {
    if (!serviceVisible(s.service, proxy, egressHosts)) continue;
    const prev = byHost.get(s.service.hostname);
    if (prev === undefined || (s.service.namespace === proxy.namespace && prev.service.namespace !== proxy.namespace)) {
      byHost.set(s.service.hostname, s);
    }
  }
  return [...byHost.values()];
}
