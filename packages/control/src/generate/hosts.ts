/**
 * The names a client may use for a service, as the `domains` of its virtual host (Istio's
 * generateVirtualHostDomains): the FQDN; for Kubernetes-style hosts `<name>.<ns>.svc.<suffix>` also `<name>.<ns>`
 * and `<name>.<ns>.svc`, and the bare `<name>` when the proxy is in the service's namespace; the service's aliases;
 * the VIP; each of them with and without `:<port>`.
 */
import type { MeshService, ProxyNode } from '../snapshot/types.js';

export function hostNames(ms: MeshService, proxy: ProxyNode, domainSuffix: string): string[] {
  const host = ms.service.hostname;
  const names = [host];
  const kube = `.svc.${domainSuffix}`;
  if (host.endsWith(kube)) {
    const [name, ns] = host.slice(0, -kube.length).split('.');
    if (name !== undefined && ns !== undefined && host === `${name}.${ns}${kube}`) {
      if (proxy.namespace === ns) names.push(name);
      names.push(`${name}.${ns}`, `${name}.${ns}.svc`);
    }
  }
  names.push(...ms.service.aliases);
  if (ms.vip !== undefined && !ms.vip.includes('/')) names.push(ms.vip);
  return [...new Set(names)];
}

/** Virtual-host domains for a sidecar: every name with and without the port. */
export function sidecarDomains(ms: MeshService, proxy: ProxyNode, domainSuffix: string, port: number): string[] {
  return hostNames(ms, proxy, domainSuffix).flatMap((n) => [n, `${n}:${port}`]);
}

/** Virtual-host domains for a gateway host: the host and the host with any port. */
export function gatewayDomains(host: string): string[] {
  return host === '*' ? ['*'] : [host, `${host}:*`];
}
