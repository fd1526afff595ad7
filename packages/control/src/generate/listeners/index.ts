/** LDS: the listeners a proxy gets, by proxy type. */
import type { GeneratedResource, ProxyNode, Snapshot } from '../../snapshot/types.js';
import { visibleServices } from '../scope.js';
import { withEastWestListeners } from './east-west.js';
import { withMeshTelemetry } from './filters.js';
import { gatewayListeners } from './gateway.js';
import { inboundListener } from './inbound.js';
import { outboundListener } from './outbound.js';
import { proxylessListeners } from './proxyless.js';

export function generateListeners(snapshot: Snapshot, proxy: ProxyNode): readonly GeneratedResource[] {
  let listeners: Record<string, unknown>[];
  switch (proxy.type) {
    case 'router':
      listeners = withEastWestListeners(snapshot, proxy, gatewayListeners(snapshot, proxy));
      break;
    case 'proxyless':
      listeners = proxylessListeners(snapshot, proxy, visibleServices(snapshot, proxy));
      break;
    case 'sidecar':
      listeners = [outboundListener(snapshot, proxy, visibleServices(snapshot, proxy)), inboundListener(snapshot, proxy)];
      break;
  }
  // MeshConfig access logs and tracing on sidecars and gateways (proxyless gRPC has no access log or tracer).
  if (proxy.type !== 'proxyless') listeners = withMeshTelemetry(listeners, snapshot);
  return listeners.map((body) => ({ name: body.name as string, body }));
}
