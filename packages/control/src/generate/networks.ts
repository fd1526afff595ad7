/**
 * Networks: which network a workload is on, and how a proxy on one network reaches the workloads of another.
 *
 * A workload's network, first that applies (Istio's order: the endpoint's own label, then `meshNetworks`):
 *   1. its own `network` (WorkloadEntry `network`, or set by its registry adapter from the Registry's `network`, or a
 *      Kubernetes Pod's `topology.istio.io/network` label);
 *   2. its `topology.istio.io/network` label;
 *   3. MeshConfig `networks`: a network whose `endpoints[].fromRegistry` names the workload's registry shard (the
 *      shard id such as `file:/etc/trellis/b`, or the part after `<kind>:` such as a Kubernetes cluster id);
 *   4. MeshConfig `networks`: the network whose `cidrs` / `endpoints[].fromCidr` contain the workload's address
 *      (longest prefix wins; a tie goes to the network name first in sort order);
 *   5. MeshConfig `network`, the control plane's own network ('' when unset).
 * A proxy's network is the `NETWORK` of its node metadata, else MeshConfig `network`. The empty network is "unknown"
 * and is treated as the same network as every other (Istio's `SameOrEmpty`), so a mesh that names no networks
 * behaves as one flat network.
 *
 * Gateways of a network: `networks.<name>.gateways[]`, each a fixed `address` or the endpoints of the service named
 * by `registryServiceName` (their address, and the service port numbered `port` mapped to the workload's port).
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { MeshNetwork, ServicePort, WorkloadEntry } from '@trellis/model';
import type { MeshSettings, Snapshot } from '../snapshot/types.js';

/** The label that names a workload's network (Istio's). */
export const NETWORK_LABEL = 'topology.istio.io/network';

/** One address a network's gateway is reached at. */
export interface GatewayAddress {
  readonly address: string;
  readonly port: number;
}

/** Whether two networks are the same for routing; '' (unknown) is the same as any. */
export function sameNetwork(a: string, b: string): boolean {
  return a === '' || b === '' || a === b;
}

interface CidrRule {
  readonly network: string;
  readonly prefix: number;
  readonly list: BlockList;
  readonly family: 'ipv4' | 'ipv6';
}

function cidrRule(network: string, cidr: string): CidrRule | undefined {
  const slash = cidr.indexOf('/');
  const addr = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : undefined;
  if (family === undefined) return undefined;
  const prefix = slash < 0 ? (family === 'ipv4' ? 32 : 128) : Number(cidr.slice(slash + 1));
  const list = new BlockList();
  list.addSubnet(addr, prefix, family);
  return { network, prefix, list, family };
}

/** Resolves networks and gateways for one snapshot. Build one per generation; it caches nothing across snapshots. */
export class Networks {
  readonly #mesh: MeshSettings;
  readonly #snapshot: Snapshot;
  readonly #cidrs: readonly CidrRule[];
  readonly #registries: ReadonlyMap<string, string>;

  constructor(snapshot: Snapshot) {
    this.#snapshot = snapshot;
    this.#mesh = snapshot.mesh;
    const cidrs: CidrRule[] = [];
    const registries = new Map<string, string>();
    const table: Readonly<Record<string, MeshNetwork>> = this.#mesh.networks ?? {};
    for (const name of Object.keys(table).sort()) {
      const n = table[name]!;
      for (const c of n.cidrs ?? []) {
        const r = cidrRule(name, c);
        if (r !== undefined) cidrs.push(r);
      }
      for (const e of n.endpoints ?? []) {
        if (e.fromCidr !== undefined) {
          const r = cidrRule(name, e.fromCidr);
          if (r !== undefined) cidrs.push(r);
        }
        if (e.fromRegistry !== undefined && !registries.has(e.fromRegistry)) registries.set(e.fromRegistry, name);
      }
    }
    // Longest prefix first; the stable sort keeps network-name order among equal prefixes.
    this.#cidrs = cidrs.sort((a, b) => b.prefix - a.prefix);
    this.#registries = registries;
  }

  /** The network of a proxy that says `network` in its node metadata. */
  proxyNetwork(network: string): string {
    return network !== '' ? network : this.#mesh.network;
  }

  /** The network a workload is on (see the module comment for the order). */
  workloadNetwork(w: WorkloadEntry): string {
    if (w.network !== '') return w.network;
    const label = w.labels[NETWORK_LABEL];
    if (label !== undefined && label !== '') return label;
    if (this.#registries.size > 0) {
      const shard = w.source.shard;
      const byShard = this.#registries.get(shard) ?? this.#registries.get(shard.slice(shard.indexOf(':') + 1));
      if (byShard !== undefined) return byShard;
    }
    if (this.#cidrs.length > 0) {
      const family = isIPv4(w.address) ? 'ipv4' : isIPv6(w.address) ? 'ipv6' : undefined;
      if (family !== undefined) {
        for (const r of this.#cidrs) if (r.family === family && r.list.check(w.address, family)) return r.network;
      }
    }
    return this.#mesh.network;
  }

  /** Addresses of a network's gateways; empty when it has none (its workloads are unreachable from elsewhere). */
  gateways(network: string): readonly GatewayAddress[] {
    const n = this.#mesh.networks?.[network];
    const out: GatewayAddress[] = [];
    for (const gw of n?.gateways ?? []) {
      if (gw.address !== undefined) {
        out.push({ address: gw.address, port: gw.port });
        continue;
      }
      const ms = this.#snapshot.services.find((s) => s.service.hostname === gw.registryServiceName);
      if (ms === undefined) continue;
      const sp: ServicePort | undefined = ms.service.ports.find((p) => p.number === gw.port);
      for (const w of ms.endpoints) {
        if (w.health === 'UNHEALTHY' || w.address.startsWith('unix://')) continue;
        const port = sp === undefined ? gw.port : (w.ports[sp.name] ?? sp.targetPort ?? sp.number);
        out.push({ address: w.address, port });
      }
    }
    const seen = new Set<string>();
    return out.filter((g) => {
      const k = `${g.address}:${g.port}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }
}
