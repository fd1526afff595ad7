/**
 * A cluster's hosts grouped by priority and locality, and the pick: the lowest priority with an available host
 * (failover), then a locality by weight, then the cluster's policy (round robin, least request P2C, random, ring hash).
 * A host is available when EDS says healthy and outlier detection has not ejected it. Below the panic threshold
 * (fewer than that percent of all hosts available) the pick ignores availability, as Envoy's panic mode does.
 */
import type { ClusterLoadAssignmentConfig, LbPolicy, Locality, SocketAddress } from '@trellis/api';
import type { OutlierHostState } from '../cluster/outlier.js';
import { fnv1a } from './hash.js';

export interface Host {
  readonly address: SocketAddress;
  /** `ip:port` (IPv6 in brackets). */
  readonly key: string;
  readonly weight: number;
  readonly healthy: boolean;
  /** EDS health status as sent. */
  readonly health?: string;
  readonly metadata: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly locality: Locality;
  readonly priority: number;
  /** Requests in flight (least request). */
  active: number;
  /** Outlier detection: ejected until this clock time (ms); 0 = not ejected. */
  ejectedUntil: number;
  consecutive5xx: number;
  /** Outlier detector state, once the host has had a result (kept across EDS updates). */
  outlier?: OutlierHostState;
  /** Requests completed (admin /clusters). */
  total: number;
  errors: number;
}

interface HostList {
  readonly hosts: readonly Host[];
  readonly weight: number;
  rr: number;
  /** Smooth weighted round robin state, per host. */
  current?: number[];
  ring?: { points: Uint32Array; hosts: Host[] };
}

export interface PickInput {
  /** Request hash for RING_HASH (null = none: falls back to random). */
  readonly hash: number | null;
  readonly now: number;
}

export function hostKey(a: SocketAddress): string {
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

export class HostSet {
  readonly all: readonly Host[];
  private readonly priorities: { readonly level: number; readonly localities: HostList[]; readonly flat: HostList; readonly weightedLocalities: boolean }[];

  /** `panicThreshold`: percent of hosts that must be available, else the pick ignores health (0 = never panic). */
  constructor(cla: ClusterLoadAssignmentConfig | null, readonly policy: LbPolicy, private readonly ringSize = 1024, private readonly random = Math.random, previous?: HostSet, private readonly panicThreshold = 0) {
    const prev = new Map(previous?.all.map((h) => [h.key, h]));
    const byLevel = new Map<number, HostList[]>();
    const all: Host[] = [];
    for (const l of cla?.localities ?? []) {
      const hosts = l.endpoints.map((e): Host => {
        const key = hostKey(e.address);
        const p = prev.get(key);
        return { address: e.address, key, weight: e.weight, healthy: e.healthy, health: e.health, metadata: e.metadata, locality: l.locality, priority: l.priority, active: p?.active ?? 0, ejectedUntil: p?.ejectedUntil ?? 0, consecutive5xx: p?.consecutive5xx ?? 0, outlier: p?.outlier, total: p?.total ?? 0, errors: p?.errors ?? 0 };
      });
      all.push(...hosts);
      const lists = byLevel.get(l.priority) ?? [];
      lists.push({ hosts, weight: l.weight, rr: 0 });
      byLevel.set(l.priority, lists);
    }
    this.all = all;
    this.priorities = [...byLevel.entries()].sort((a, b) => a[0] - b[0]).map(([level, localities]) => ({
      level, localities, flat: { hosts: localities.flatMap((x) => x.hosts), weight: 1, rr: 0 },
      weightedLocalities: localities.length > 1 && localities.some((x) => x.weight !== localities[0].weight),
    }));
  }

  /** Whether any host could take a request now. */
  hasAvailable(now: number): boolean {
    return this.all.some((h) => available(h, now));
  }

  pick(input: PickInput): Host | null {
    if (this.panicThreshold > 0 && this.all.length > 0 && this.panics(input.now)) return this.pickInPanic(input);
    for (const p of this.priorities) {
      let list: HostList | undefined;
      if (p.weightedLocalities) {
        const live = p.localities.filter((l) => l.hosts.some((h) => available(h, input.now)));
        if (!live.length) continue;
        list = weighted(live, (l) => l.weight, this.random);
      } else {
        if (!p.flat.hosts.some((h) => available(h, input.now))) continue;
        list = p.flat;
      }
      const h = this.pickIn(list, input);
      if (h) return h;
    }
    return null;
  }

  private panics(now: number): boolean {
    let up = 0;
    for (const h of this.all) if (available(h, now)) up += 1;
    return (up * 100) / this.all.length < this.panicThreshold;
  }

  /** Panic mode: every host of the first priority, healthy or not, by the cluster's policy. */
  private pickInPanic(input: PickInput): Host | null {
    const p = this.priorities[0];
    return p ? this.pickIn(p.flat, input, true) : null;
  }

  private pickIn(list: HostList, input: PickInput, panic = false): Host | null {
    const live = panic ? list.hosts : list.hosts.filter((h) => available(h, input.now));
    if (!live.length) return null;
    switch (this.policy) {
      case 'LEAST_REQUEST': {
        if (live.length === 1) return live[0];
        const a = live[Math.floor(this.random() * live.length)];
        let b = live[Math.floor(this.random() * live.length)];
        if (b === a) b = live[(live.indexOf(a) + 1) % live.length];
        return a.active / a.weight <= b.active / b.weight ? a : b;
      }
      case 'RANDOM':
        return weighted(live, (h) => h.weight, this.random);
      case 'RING_HASH':
      case 'MAGLEV':
        if (input.hash === null) return weighted(live, (h) => h.weight, this.random);
        return this.ringPick(list, input, panic);
      default:
        return roundRobin(list, input.now, panic);
    }
  }

  private ringPick(list: HostList, input: PickInput, panic: boolean): Host | null {
    if (!list.ring) {
      const total = list.hosts.reduce((s, h) => s + h.weight, 0);
      const pts: [number, Host][] = [];
      for (const h of list.hosts) {
        const n = Math.max(1, Math.ceil((this.ringSize * h.weight) / total));
        for (let i = 0; i < n; i++) pts.push([fnv1a(`${h.key}_${i}`), h]);
      }
      pts.sort((a, b) => a[0] - b[0]);
      list.ring = { points: Uint32Array.from(pts.map((p) => p[0])), hosts: pts.map((p) => p[1]) };
    }
    const { points, hosts } = list.ring;
    let lo = 0;
    let hi = points.length;
    const h = input.hash! >>> 0;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (points[mid] < h) lo = mid + 1; else hi = mid; }
    for (let i = 0; i < hosts.length; i++) {
      const host = hosts[(lo + i) % hosts.length];
      if (panic || available(host, input.now)) return host;
    }
    return null;
  }
}

function available(h: Host, now: number): boolean {
  return h.healthy && h.ejectedUntil <= now;
}

function weighted<T>(items: readonly T[], w: (t: T) => number, random: () => number): T {
  const total = items.reduce((s, t) => s + w(t), 0);
  let r = random() * total;
  for (const t of items) { r -= w(t); if (r < 0) return t; }
  return items[items.length - 1];
}

/** Smooth weighted round robin (nginx's): equal weights degrade to plain rotation. */
function roundRobin(list: HostList, now: number, panic: boolean): Host | null {
  const hs = list.hosts;
  if (hs.every((h) => h.weight === hs[0].weight)) {
    for (let i = 0; i < hs.length; i++) {
      const h = hs[list.rr++ % hs.length];
      if (panic || available(h, now)) return h;
    }
    return null;
  }
  list.current ??= hs.map(() => 0);
  let best = -1;
  let total = 0;
  for (let i = 0; i < hs.length; i++) {
    if (!panic && !available(hs[i], now)) continue;
    list.current[i] += hs[i].weight;
    total += hs[i].weight;
    if (best < 0 || list.current[i] > list.current[best]) best = i;
  }
  if (best < 0) return null;
  list.current[best] -= total;
  return hs[best];
}
