/**
 * Is the step from one snapshot to the next an endpoint-only change? Then only EDS can differ for proxies whose own
 * address is not among the changed endpoints, and the ADS server regenerates EDS alone (as istiod's incremental EDS
 * push does). Any doubt answers "no" and everything is regenerated; the per-type hash comparison decides what is
 * actually sent either way, so this is only about how much work a push does.
 */
import type { WorkloadEntry } from '@trellis/model';
import type { Snapshot } from './types.js';

export interface EndpointOnlyDelta {
  /** Addresses of endpoints added, removed or changed (a proxy at one of them gets a full regeneration). */
  readonly addresses: ReadonlySet<string>;
  /** Hostnames of the services whose endpoints changed. */
  readonly hosts: ReadonlySet<string>;
}

const same = (a: unknown, b: unknown): boolean => a === b || JSON.stringify(a) === JSON.stringify(b);

/** What other generators may read of an endpoint set: identities and labels (subsets, TLS mode, SANs). */
function identityShape(eps: readonly WorkloadEntry[]): string {
  return [...new Set(eps.map((w) => `${w.namespace}/${w.serviceAccount}/${JSON.stringify(w.labels)}`))].sort().join('\n');
}

export function endpointOnlyDelta(prev: Snapshot, next: Snapshot): EndpointOnlyDelta | undefined {
  if (!same(prev.mesh, next.mesh)) return undefined;
  if (prev.services.length !== next.services.length || prev.workloads.length !== next.workloads.length) return undefined;
  for (const k of Object.keys(next.config) as (keyof Snapshot['config'])[]) {
    const a = prev.config[k];
    const b = next.config[k];
    if (a.length !== b.length || a.some((r, i) => r !== b[i] && !same(r, b[i]))) return undefined;
  }
  if (prev.workloads.some((w, i) => w !== next.workloads[i] && !same(w, next.workloads[i]))) return undefined;
  const addresses = new Set<string>();
  const hosts = new Set<string>();
  for (let i = 0; i < next.services.length; i++) {
    const p = prev.services[i];
    const n = next.services[i];
    if (p.vip !== n.vip || (p.service !== n.service && !same(p.service, n.service))) return undefined;
    if (p.endpoints === n.endpoints) continue;
    if (p.endpoints.length === n.endpoints.length && p.endpoints.every((w, j) => w === n.endpoints[j] || same(w, n.endpoints[j]))) continue;
    // DNS clusters carry their endpoints inline in CDS; identity changes reach CDS (SANs, TLS mode, subsets).
    if (n.service.resolution !== 'STATIC' || identityShape(p.endpoints) !== identityShape(n.endpoints)) return undefined;
    hosts.add(n.service.hostname);
    const before = new Set(p.endpoints.map((w) => JSON.stringify(w)));
    const after = new Set(n.endpoints.map((w) => JSON.stringify(w)));
    for (const w of p.endpoints) if (!after.has(JSON.stringify(w))) addresses.add(w.address);
    for (const w of n.endpoints) if (!before.has(JSON.stringify(w))) addresses.add(w.address);
  }
  return { addresses, hosts };
}
