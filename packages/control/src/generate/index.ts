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
import { ownWorkloadPorts } from './workload.js';
import { ScopeKeys, type ScopedType } from '../snapshot/scope-key.js';

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

const SCOPED: Readonly<Record<GeneratedTypeUrl, ScopedType>> = Object.freeze({
  [TYPE_URL.listener]: 'listener',
  [TYPE_URL.route]: 'route',
  [TYPE_URL.cluster]: 'cluster',
  [TYPE_URL.endpoint]: 'endpoint',
  [TYPE_URL.nameTable]: 'nameTable',
});

/**
 * The given generators, with each of the built-in ones (same function as in `generators`) memoised per
 * (snapshot, type, scope key): proxies that read the same inputs (see `snapshot/scope-key.ts`) share one deeply
 * frozen result, so a push to a thousand sidecars in one namespace generates each type once. Other generators
 * (tests pass their own) are called as they are. Results are held weakly by their snapshot.
 */
export function memoizeGenerators(given: Readonly<Record<string, Generator>>): Readonly<Record<string, Generator>> {
  // Inbound listener chains and inbound clusters read only (port, protocol) of the proxy's own workload ports.
  const keys = new ScopeKeys((snapshot, proxy) => ownWorkloadPorts(snapshot, proxy).map((p) => `${p.port}/${p.protocol}`).join(','));
  const out: Record<string, Generator> = {};
  for (const [url, gen] of Object.entries(given)) {
    const scoped = (SCOPED as Record<string, ScopedType | undefined>)[url];
    if (scoped === undefined || (generators as Record<string, Generator | undefined>)[url] !== gen) {
      out[url] = gen;
      continue;
    }
    const memo = new WeakMap<Snapshot, Map<string, readonly GeneratedResource[]>>();
    out[url] = (snapshot, proxy) => {
      let bySnapshot = memo.get(snapshot);
      if (bySnapshot === undefined) memo.set(snapshot, (bySnapshot = new Map()));
      const key = keys.key(snapshot, proxy, scoped);
      let result = bySnapshot.get(key);
      if (result === undefined) {
        result = deepFreeze(gen(snapshot, proxy));
        bySnapshot.set(key, result);
      }
      return result;
    };
  }
  return Object.freeze(out);
}

export { outboundClusterName, inboundClusterName, httpRouteName, gatewayListenerName, parseOutboundClusterName } from './names.js';
