/**
 * A proxy's locality, as Istio decides it: the `locality` of its xDS node when it sends one, else the locality of
 * its own workload (the WorkloadEntry or endpoint at one of its IP addresses; Istio takes it from the proxy's service
 * instance). A VM's agent announces its locality in the auto-registered WorkloadEntry (`trellis-agent --locality`),
 * so its proxy gets failover priorities without saying anything itself.
 */
import type { ProxyNode, Snapshot } from '../snapshot/types.js';

/** Address → the first non-empty locality of a workload at that address (services' endpoints first, then the rest). */
export function localityByAddress(snapshot: Snapshot): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  const add = (address: string, locality: string): void => {
    if (locality !== '' && !out.has(address)) out.set(address, locality);
  };
  for (const ms of snapshot.services) for (const w of ms.endpoints) add(w.address, w.locality);
  for (const w of snapshot.workloads) add(w.address, w.locality);
  return out;
}

/** The locality failover priorities are computed from. `index` is `localityByAddress(snapshot)`. */
export function proxyLocality(proxy: ProxyNode, index: ReadonlyMap<string, string>): string {
  if (proxy.locality !== '') return proxy.locality;
  for (const ip of proxy.ipAddresses) {
    const l = index.get(ip);
    if (l !== undefined) return l;
  }
  return '';
}
