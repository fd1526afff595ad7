/**
 * The proxy's own workload: which services it serves and on which ports it listens. A service counts when one
 * of its endpoints has one of the proxy's IP addresses, or when its `workloadSelector` matches the proxy's labels
 * in the proxy's namespace (Istio's ServiceInstances for a proxy).
 */
import type { Protocol, ServicePort, WorkloadEntry } from '@trellis/model';
import type { MeshService, ProxyNode, Snapshot } from '../snapshot/types.js';
import { workloadPort } from './endpoints.js';
import { labelsMatch } from './scope.js';

export interface WorkloadPort {
  /** Port the application listens on (the original destination port of inbound connections). */
  readonly port: number;
  readonly protocol: Protocol;
  readonly servicePort: ServicePort;
  readonly service: MeshService;
}

function ownEndpoint(ms: MeshService, proxy: ProxyNode): WorkloadEntry | undefined {
  return ms.endpoints.find((w) => proxy.ipAddresses.includes(w.address));
}

export function ownServices(snapshot: Snapshot, proxy: ProxyNode): readonly { service: MeshService; endpoint?: WorkloadEntry }[] {
  const out: { service: MeshService; endpoint?: WorkloadEntry }[] = [];
  for (const ms of snapshot.services) {
    const ep = ownEndpoint(ms, proxy);
    if (ep !== undefined) out.push({ service: ms, endpoint: ep });
    else if (ms.service.workloadSelector !== undefined && ms.service.namespace === proxy.namespace && labelsMatch(ms.service.workloadSelector, proxy.labels)) out.push({ service: ms });
  }
  return out;
}

/** Distinct workload ports, first service (by snapshot order) wins a port. */
export function ownWorkloadPorts(snapshot: Snapshot, proxy: ProxyNode): readonly WorkloadPort[] {
  const byPort = new Map<number, WorkloadPort>();
  for (const { service, endpoint } of ownServices(snapshot, proxy)) {
    for (const sp of service.service.ports) {
      const port = endpoint !== undefined ? workloadPort(sp, endpoint) : (sp.targetPort ?? sp.number);
      if (!byPort.has(port)) byPort.set(port, { port, protocol: sp.protocol, servicePort: sp, service });
    }
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}
