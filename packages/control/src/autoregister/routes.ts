/**
 * `GET /v1/workloadgroups/:namespace/:name` on the control plane's HTTP port: what `trellisctl vm configure` needs
 * from a WorkloadGroup beyond the token (the readiness probe the agent runs, written into the bundle as probe.json).
 *
 *   200 {namespace, name, serviceAccount, labels, ports, probe?}
 *   404 {code: TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN, message}
 */
import { sendError, sendJson, type HttpRoute } from '../http/server.js';
import { serviceAccountOf, type GroupLike } from './entry.js';

export function workloadGroupRoutes(group: (namespace: string, name: string) => GroupLike | undefined): HttpRoute[] {
  return [{
    method: 'GET',
    path: '/v1/workloadgroups/:namespace/:name',
    handler(_req, res, params) {
      const g = group(params.namespace ?? '', params.name ?? '');
      if (!g) return sendError(res, 404, 'TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN', `no WorkloadGroup ${params.namespace}/${params.name}`);
      sendJson(res, 200, {
        namespace: g.metadata.namespace,
        name: g.metadata.name,
        serviceAccount: serviceAccountOf(g),
        labels: { ...(g.spec.template.labels ?? {}), ...(g.spec.metadata?.labels ?? {}) },
        ports: g.spec.template.ports ?? {},
        ...(g.spec.probe ? { probe: g.spec.probe } : {}),
      });
    },
  }];
}
