/**
 * xDS generation: one pure generator per type URL, `(snapshot, proxy) → resources`, with Istio's names and
 * semantics. See docs/xds-generation.md for the mapping from Istio config to Envoy fields.
 */
import { TYPE_URL } from '@trellis/api';
import type { GeneratedResource, Generator, ProxyNode, Snapshot } from '../snapshot/types.js';
import { generateClusters } from './clusters.js';
import { generateEndpoints } from './endpoints.js';
import { generateListeners } from './listeners/index.js';
import { generateNameTable } from './name-table.js';
import { generateRoutes } from './routes.js';

export type GeneratedTypeUrl =
  | typeof TYPE_URL.listener
  | typeof TYPE_URL.route
  | typeof TYPE_URL.cluster
  | typeof TYPE_URL.endpoint
  | typeof TYPE_URL.nameTable;

export const generators: Readonly<Record<GeneratedTypeUrl, Generator>> = Object.freeze({
  [TYPE_URL.listener]: generateListeners,
  [TYPE_URL.route]: generateRoutes,
  [TYPE_URL.cluster]: generateClusters,
  [TYPE_URL.endpoint]: generateEndpoints,
  [TYPE_URL.nameTable]: generateNameTable,
});

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as Record<string, unknown>)) deepFreeze(x);
  }
  return v;
}

/** Every resource of every generated type for one proxy, deeply frozen, in generation order. */
export function generateAll(snapshot: Snapshot, proxy: ProxyNode): Readonly<Record<GeneratedTypeUrl, readonly GeneratedResource[]>> {
  const out = {} as Record<GeneratedTypeUrl, readonly GeneratedResource[]>;
  for (const [url, gen] of Object.entries(generators) as [GeneratedTypeUrl, Generator][]) out[url] = gen(snapshot, proxy);
  return deepFreeze(out);
}

export { outboundClusterName, inboundClusterName, httpRouteName, gatewayListenerName, parseOutboundClusterName } from './names.js';
