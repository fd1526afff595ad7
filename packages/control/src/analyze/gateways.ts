/**
 * TRELLIS_A0005: every gateway a VirtualService names (in `spec.gateways` or a match's `gateways`) must be a
 * defined Gateway (`name` is in the VirtualService's namespace, `ns/name` elsewhere; `mesh` means the sidecars).
 *
 * TRELLIS_A0006 (scenario DS-17): a VirtualService with `gateways` that do not include `mesh` no longer applies to
 * sidecars. When one of its hosts is a service that mesh clients call (a ServiceEntry defines it), that is
 * usually a mistake: adding `mesh` applies the routes to both.
 */
import type { AnalysisContext, Located } from './context.js';
import type { VirtualServiceView } from './destinations.js';
import { candidates } from './hosts.js';

function gatewayKey(ref: string, namespace: string): string {
  const slash = ref.indexOf('/');
  return slash < 0 ? `${namespace}/${ref}` : ref;
}

export function checkGateways(cx: AnalysisContext): void {
  for (const vs of cx.ofKind('VirtualService')) {
    const spec = vs.resource.spec as VirtualServiceView;
    const ns = vs.resource.metadata.namespace;
    const refs: { path: string; ref: string }[] = [];
    (spec.gateways ?? []).forEach((g, i) => refs.push({ path: `spec.gateways[${i}]`, ref: g }));
    for (const section of ['http', 'tls', 'tcp'] as const) {
      (spec[section] ?? []).forEach((route, i) => {
        (route.match ?? []).forEach((m, j) => {
          (m.gateways ?? []).forEach((g, k) => refs.push({ path: `spec.${section}[${i}].match[${j}].gateways[${k}]`, ref: g }));
        });
      });
    }
    for (const { path, ref } of refs) {
      if (ref === 'mesh') continue;
      const key = gatewayKey(ref, ns);
      if (!cx.gateways.has(key)) {
        const [gns, gname] = key.split('/');
        cx.report('unknownGateway', vs, path, `gateway "${ref}" is not defined (no Gateway ${gname} in namespace ${gns})`);
      }
    }
    checkMeshBinding(cx, vs, spec);
  }
}

function checkMeshBinding(cx: AnalysisContext, vs: Located, spec: VirtualServiceView): void {
  const gateways = spec.gateways ?? [];
  if (gateways.length === 0 || gateways.includes('mesh')) return;
  const ns = vs.resource.metadata.namespace;
  const meshHost = (spec.hosts ?? []).find((h) => !h.includes('*') && cx.services.lookup(candidates(h, ns)).length > 0);
  if (meshHost === undefined) return;
  cx.report('meshGatewayMissing', vs, 'spec.gateways',
    `bound to gateways [${gateways.join(', ')}] without "mesh": sidecars calling ${candidates(meshHost, ns)[0]} no longer get these routes; add "mesh" to apply them to both`);
}
