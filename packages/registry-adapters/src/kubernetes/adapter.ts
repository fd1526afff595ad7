/**
 * Kubernetes registry adapter: one instance watches one cluster (shard `kubernetes:<clusterId>`).
 *
 * Services, EndpointSlices, Pods and Nodes are each kept by list+watch (see list-watch.ts). A change re-converts
 * only the Services it touches: a Service or its slices → that Service; a Pod → the Services whose endpoints
 * refer to it; a Node → every Service. The first snapshot is yielded once all four collections are listed.
 */
import type { RegistryAdapter, RegistryChange, SourceKind } from '@trellis/model';
import { systemClock, type BackoffOptions, type Clock } from '../runtime.js';
import { ShardPublisher } from '../shard-publisher.js';
import type { KubeConnection, KubeHttpClient } from './client.js';
import { openWatchClient } from './watch-client.js';
import {
  SERVICE_NAME_LABEL,
  convertKubernetesService,
  type KubeEndpointSlice,
  type KubeNode,
  type KubeObject,
  type KubePod,
  type KubeService,
} from './convert.js';
import { listWatch } from './list-watch.js';

export interface KubernetesAdapterOptions {
  /** Cluster id; the shard is `kubernetes:<clusterId>`. Default `Kubernetes` (Istio's default cluster id). */
  readonly clusterId?: string;
  /** Network of this cluster's workloads. Default `''`. */
  readonly network?: string;
  /** Cluster DNS domain. Default `cluster.local`. */
  readonly domain?: string;
  /** Explicit connection; else `kubeconfig`; else in-cluster credentials. */
  readonly connection?: KubeConnection;
  /** Path of a kubeconfig file. */
  readonly kubeconfig?: string;
  /** Context in the kubeconfig. Default its `current-context`. */
  readonly context?: string;
  /** Page size of lists. Default 500. */
  readonly pageSize?: number;
  /** Watch `timeoutSeconds`. Default 300. */
  readonly watchTimeoutSeconds?: number;
  /** Watch Pods (labels, service account) and Nodes (locality). Default true for both. */
  readonly watchPods?: boolean;
  readonly watchNodes?: boolean;
  readonly backoff?: BackoffOptions;
  readonly clock?: Clock;
  readonly random?: () => number;
}

type Collection = 'services' | 'endpointslices' | 'pods' | 'nodes';
const PATHS: Readonly<Record<Collection, string>> = {
  services: '/api/v1/services',
  endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
  pods: '/api/v1/pods',
  nodes: '/api/v1/nodes',
};

const keyOf = (o: KubeObject): string => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);

export class KubernetesAdapter implements RegistryAdapter {
  readonly kind: SourceKind = 'kubernetes';
  readonly shard: string;
  private readonly clock: Clock;
  /** Lists done per collection (for tests and `registry status`). */
  readonly lists: Record<Collection, number> = { services: 0, endpointslices: 0, pods: 0, nodes: 0 };

  constructor(private readonly options: KubernetesAdapterOptions = {}) {
    this.shard = `kubernetes:${options.clusterId ?? 'Kubernetes'}`;
    this.clock = options.clock ?? systemClock;
  }

  watch(signal: AbortSignal): AsyncIterable<RegistryChange> {
    const publisher = new ShardPublisher('kubernetes', this.shard, this.clock);
    const opened = openWatchClient(this.options, publisher, signal);
    if (!opened) return publisher.changes(signal);
    this.run(opened.client, publisher, opened.signal);
    return publisher.changes(signal);
  }

  private run(client: KubeHttpClient, publisher: ShardPublisher, signal: AbortSignal): void {
    const services = new Map<string, KubeService>();
    const slices = new Map<string, KubeEndpointSlice>();
    const slicesByService = new Map<string, Set<string>>();
    const pods = new Map<string, KubePod>();
    const nodes = new Map<string, KubeNode>();
    const servicesByPod = new Map<string, Set<string>>();
    const podsByService = new Map<string, readonly string[]>();
    const dirty = new Set<string>();
    let all = false;
    let scheduled = false;
    const collections: Collection[] = ['services', 'endpointslices'];
    if (this.options.watchPods ?? true) collections.push('pods');
    if (this.options.watchNodes ?? true) collections.push('nodes');
    const listed = new Set<Collection>();
    const failing = new Set<Collection>();
    const convertOptions = { shard: this.shard, domain: this.options.domain, network: this.options.network };
    const lookup = { pod: (ns: string, name: string) => pods.get(`${ns}/${name}`), node: (name: string) => nodes.get(name) };

    const flush = (): void => {
      scheduled = false;
      const targets = all ? new Set([...services.keys(), ...publisher.groupNames()]) : new Set(dirty);
      all = false;
      dirty.clear();
      const problems = [];
      for (const key of targets) {
        for (const p of podsByService.get(key) ?? []) servicesByPod.get(p)?.delete(key);
        podsByService.delete(key);
        const svc = services.get(key);
        if (!svc) {
          publisher.deleteGroup(key);
          continue;
        }
        const own = [...(slicesByService.get(key) ?? [])].map((k) => slices.get(k)).filter((s): s is KubeEndpointSlice => s !== undefined);
        const r = convertKubernetesService(svc, own, lookup, convertOptions);
        podsByService.set(key, r.pods);
        for (const p of r.pods) {
          const set = servicesByPod.get(p) ?? new Set<string>();
          set.add(key);
          servicesByPod.set(p, set);
        }
        problems.push(...r.problems);
        publisher.setGroup(key, [r.service], r.workloads);
      }
      if (problems.length) publisher.setProblems(problems);
    };
    const touch = (key: string | 'all'): void => {
      if (key === 'all') all = true;
      else dirty.add(key);
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(flush);
      }
    };
    const serviceOfSlice = (s: KubeEndpointSlice): string | undefined => {
      const name = s.metadata.labels?.[SERVICE_NAME_LABEL];
      return name ? `${s.metadata.namespace}/${name}` : undefined;
    };
    const indexSlice = (key: string, s: KubeEndpointSlice | undefined, add: boolean): void => {
      const svc = s && serviceOfSlice(s);
      if (!svc) return;
      const set = slicesByService.get(svc) ?? new Set<string>();
      if (add) set.add(key);
      else set.delete(key);
      slicesByService.set(svc, set);
      touch(svc);
    };

    const handlers = {
      services: {
        replace: (items: readonly KubeObject[]) => {
          services.clear();
          for (const s of items) services.set(keyOf(s), s as KubeService);
          touch('all');
        },
        event: (type: string, o: KubeObject) => {
          if (type === 'DELETED') services.delete(keyOf(o));
          else services.set(keyOf(o), o as KubeService);
          touch(keyOf(o));
        },
      },
      endpointslices: {
        replace: (items: readonly KubeObject[]) => {
          slices.clear();
          slicesByService.clear();
          for (const s of items) {
            slices.set(keyOf(s), s as KubeEndpointSlice);
            indexSlice(keyOf(s), s as KubeEndpointSlice, true);
          }
          touch('all');
        },
        event: (type: string, o: KubeObject) => {
          const key = keyOf(o);
          indexSlice(key, slices.get(key), false);
          if (type === 'DELETED') slices.delete(key);
          else {
            slices.set(key, o as KubeEndpointSlice);
            indexSlice(key, o as KubeEndpointSlice, true);
          }
        },
      },
      pods: {
        replace: (items: readonly KubeObject[]) => {
          pods.clear();
          for (const p of items) pods.set(keyOf(p), p as KubePod);
          touch('all');
        },
        event: (type: string, o: KubeObject) => {
          const key = keyOf(o);
          if (type === 'DELETED') pods.delete(key);
          else pods.set(key, o as KubePod);
          for (const svc of servicesByPod.get(key) ?? []) touch(svc);
        },
      },
      nodes: {
        replace: (items: readonly KubeObject[]) => {
          nodes.clear();
          for (const n of items) nodes.set(keyOf(n), n);
          touch('all');
        },
        event: (type: string, o: KubeObject) => {
          if (type === 'DELETED') nodes.delete(keyOf(o));
          else nodes.set(keyOf(o), o);
          touch('all');
        },
      },
    } as const;

    for (const c of collections) {
      listWatch(
        client,
        PATHS[c],
        {
          replace: (items) => {
            this.lists[c]++;
            handlers[c].replace(items);
          },
          event: handlers[c].event,
          ok: () => {
            listed.add(c);
            failing.delete(c);
            if (listed.size === collections.length && failing.size === 0) {
              // Let the microtask flush of the last list land before the shard says it is synced.
              queueMicrotask(() => {
                if (listed.size === collections.length && failing.size === 0) publisher.ready();
              });
            }
          },
          error: (err) => {
            failing.add(c);
            publisher.fail(err);
          },
        },
        { pageSize: this.options.pageSize, watchTimeoutSeconds: this.options.watchTimeoutSeconds, backoff: this.options.backoff, clock: this.clock, random: this.options.random },
        signal,
      ).catch((err: unknown) => publisher.fail(err));
    }
  }
}
