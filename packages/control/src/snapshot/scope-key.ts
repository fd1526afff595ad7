/**
 * Scope keys: which proxies get identical output from a generator, for one snapshot.
 *
 * A key is the projection of a `ProxyNode` onto exactly what the generators in `generate/` read of it (audited
 * 2026-11-22; keep in step when a generator starts reading another field of the proxy):
 *
 * - every type: `type`, `namespace`, and the proxy's labels restricted to the label keys any selector in the
 *   snapshot could test. Generators only read labels through `labelsMatch(selector, proxy.labels)`, whose selectors
 *   come from config resources (Sidecar/DestinationRule `workloadSelector`, `sourceLabels`, policy and Gateway
 *   `selector`) and services' `workloadSelector`; every key of every object anywhere in the config index and every
 *   service selector key is kept, a superset of what can be tested, so the projection is exact;
 * - LDS and CDS (inbound listener and clusters): the proxy's own endpoints, i.e. for each service which endpoint is
 *   the first with one of the proxy's IP addresses (`workload.ts` `ownServices`), as (service index, endpoint index);
 *   or, when the caller supplies `ownPorts`, what the generators take from them: the (port, protocol) list of
 *   `ownWorkloadPorts` (inbound listener chains and inbound clusters read nothing else of a proxy's own workload),
 *   so the replicas of one service, each with its own IP, still share one scope;
 * - EDS: `network` (split horizon: own network direct, other networks through their gateways) and the locality
 *   failover priorities are computed from (the node's, else its own workload's: `generate/proxy-locality.ts`);
 * - CDS: `network` too (DNS clusters list their endpoints inline, split the same way, and an east-west gateway's
 *   clusters list this network's endpoints).
 *
 * Two proxies with equal keys for a type get byte-identical resources of that type from the same snapshot; the
 * ADS server generates once per key (see `memoizeGenerators` in `generate/index.ts`).
 */
import { localityByAddress, proxyLocality } from '../generate/proxy-locality.js';
import type { ConfigIndex, ProxyNode, Snapshot } from './types.js';

/** RDS and NDS read only the common part. */
export type ScopedType = 'listener' | 'cluster' | 'endpoint' | 'route' | 'nameTable';

interface SnapshotScope {
  readonly labelKeys: ReadonlySet<string>;
  /** address → [(service index, index of the first endpoint with that address in the service)]. */
  byAddress?: Map<string, [number, number][]>;
  /** Workload address → locality, for proxies whose node names no locality. */
  localities?: ReadonlyMap<string, string>;
  /** (own endpoints, namespace, labels) → `ownPorts` of a proxy with them. */
  ports?: Map<string, string>;
}

/** Per-snapshot data the keys are computed from; weakly held, so it goes with its snapshot. */
export class ScopeKeys {
  readonly #scopes = new WeakMap<Snapshot, SnapshotScope>();
  readonly #configKeys = new WeakMap<ConfigIndex, ReadonlySet<string>>();
  readonly #ownPorts: ((snapshot: Snapshot, proxy: ProxyNode) => string) | undefined;

  /**
   * `ownPorts`, when given, must be a function of the proxy's own endpoints, namespace and labels only (it is
   * computed once per distinct combination) that says all LDS and CDS read of the proxy's own workload.
   */
  constructor(ownPorts?: (snapshot: Snapshot, proxy: ProxyNode) => string) {
    this.#ownPorts = ownPorts;
  }

  /** The scope key of `proxy` for a generator of `type`, valid for `snapshot` only. */
  key(snapshot: Snapshot, proxy: ProxyNode, type: ScopedType): string {
    const scope = this.#scope(snapshot);
    const labels: string[] = [];
    for (const k of Object.keys(proxy.labels).sort()) if (scope.labelKeys.has(k)) labels.push(k, proxy.labels[k]);
    const parts: unknown[] = [proxy.type, proxy.namespace, labels];
    if (type === 'endpoint') parts.push(proxy.network, proxyLocality(proxy, (scope.localities ??= localityByAddress(snapshot))));
    // DNS clusters carry their endpoints inline, split by the proxy's network (east-west clusters too).
    if (type === 'cluster') parts.push(proxy.network);
    if (type === 'listener' || type === 'cluster') {
      const own = this.#own(snapshot, scope, proxy);
      if (this.#ownPorts === undefined) parts.push(own);
      else {
        const k = JSON.stringify([own, proxy.namespace, Object.entries(proxy.labels).sort()]);
        scope.ports ??= new Map();
        let ports = scope.ports.get(k);
        if (ports === undefined) scope.ports.set(k, (ports = this.#ownPorts(snapshot, proxy)));
        parts.push(ports);
      }
    }
    return JSON.stringify(parts);
  }

  #scope(snapshot: Snapshot): SnapshotScope {
    let s = this.#scopes.get(snapshot);
    if (s === undefined) {
      let configKeys = this.#configKeys.get(snapshot.config);
      if (configKeys === undefined) {
        const keys = new Set<string>();
        collectKeys(snapshot.config, keys);
        configKeys = keys;
        this.#configKeys.set(snapshot.config, configKeys);
      }
      const labelKeys = new Set(configKeys);
      for (const m of snapshot.services) for (const k of Object.keys(m.service.workloadSelector ?? {})) labelKeys.add(k);
      s = { labelKeys };
      this.#scopes.set(snapshot, s);
    }
    return s;
  }

  #own(snapshot: Snapshot, scope: SnapshotScope, proxy: ProxyNode): string {
    if (proxy.ipAddresses.length === 0) return '';
    if (scope.byAddress === undefined) {
      const idx = new Map<string, [number, number][]>();
      snapshot.services.forEach((m, si) => {
        m.endpoints.forEach((w, ei) => {
          let list = idx.get(w.address);
          if (list === undefined) idx.set(w.address, (list = []));
          if (list.length === 0 || list[list.length - 1][0] !== si) list.push([si, ei]);
        });
      });
      scope.byAddress = idx;
    }
    const first = new Map<number, number>();
    for (const ip of proxy.ipAddresses) {
      for (const [si, ei] of scope.byAddress.get(ip) ?? []) {
        const prev = first.get(si);
        if (prev === undefined || ei < prev) first.set(si, ei);
      }
    }
    return [...first.entries()].sort((a, b) => a[0] - b[0]).map(([si, ei]) => `${si}:${ei}`).join(',');
  }
}

function collectKeys(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) {
    for (const v of value) collectKeys(v, into);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      into.add(k);
      collectKeys(v, into);
    }
  }
}
