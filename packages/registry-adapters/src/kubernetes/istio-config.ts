/**
 * Istio configuration kinds as CRDs: a config source exactly like the file directory, read from the Kubernetes
 * API by list+watch (shard `kubernetes:<clusterId>/istio`).
 *
 * Each object is decoded with the same decoder as files (`decodeResource`): ServiceEntry and WorkloadEntry become
 * hub services/workloads, every other kind is yielded in `configs`. An object that does not decode is reported in
 * `status.problems` (`Kind/namespace/name`, field path, reason) and its last good version stays in force. A CRD that
 * is not installed (404) counts as empty and is looked for again every `missingCrdRetryMs`.
 */
import type { Kind, Problem, RegistryAdapter, RegistryChange, Resource, SourceKind } from '@trellis/model';
import { convertToHub, decodeResource } from '@trellis/model';
import { systemClock, type BackoffOptions, type Clock } from '../runtime.js';
import { ShardPublisher } from '../shard-publisher.js';
import type { KubeConnection, KubeHttpClient } from './client.js';
import { openWatchClient } from './watch-client.js';
import type { KubeObject } from './convert.js';
import { listWatch } from './list-watch.js';

/** The Istio kinds read as CRDs and their collections (v1 of each group). */
export const ISTIO_CRD_PATHS: Readonly<Partial<Record<Kind, string>>> = Object.freeze({
  ServiceEntry: '/apis/networking.istio.io/v1/serviceentries',
  WorkloadEntry: '/apis/networking.istio.io/v1/workloadentries',
  WorkloadGroup: '/apis/networking.istio.io/v1/workloadgroups',
  VirtualService: '/apis/networking.istio.io/v1/virtualservices',
  DestinationRule: '/apis/networking.istio.io/v1/destinationrules',
  Gateway: '/apis/networking.istio.io/v1/gateways',
  Sidecar: '/apis/networking.istio.io/v1/sidecars',
  PeerAuthentication: '/apis/security.istio.io/v1/peerauthentications',
  AuthorizationPolicy: '/apis/security.istio.io/v1/authorizationpolicies',
  RequestAuthentication: '/apis/security.istio.io/v1/requestauthentications',
});

export interface IstioConfigSourceOptions {
  /** Cluster id; the shard is `kubernetes:<clusterId>/istio`. Default `Kubernetes`. */
  readonly clusterId?: string;
  /** Explicit connection; else `kubeconfig`; else in-cluster credentials. */
  readonly connection?: KubeConnection;
  readonly kubeconfig?: string;
  readonly context?: string;
  /** Kinds to read. Default all of ISTIO_CRD_PATHS. */
  readonly kinds?: readonly Kind[];
  /** Retry period for a CRD that is not installed, ms. Default 60 000. */
  readonly missingCrdRetryMs?: number;
  readonly pageSize?: number;
  readonly watchTimeoutSeconds?: number;
  readonly backoff?: BackoffOptions;
  readonly clock?: Clock;
  readonly random?: () => number;
}

const keyOf = (kind: string, o: KubeObject): string => `${kind}/${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;

export class IstioConfigSource implements RegistryAdapter {
  readonly kind: SourceKind = 'kubernetes';
  readonly shard: string;
  private readonly clock: Clock;

  constructor(private readonly options: IstioConfigSourceOptions = {}) {
    this.shard = `kubernetes:${options.clusterId ?? 'Kubernetes'}/istio`;
    this.clock = options.clock ?? systemClock;
  }

  watch(signal: AbortSignal): AsyncIterable<RegistryChange> {
    const publisher = new ShardPublisher('kubernetes', this.shard, this.clock);
    const opened = openWatchClient(this.options, publisher, signal);
    if (!opened) return publisher.changes(signal);
    const { client } = opened;
    const kinds = (this.options.kinds ?? (Object.keys(ISTIO_CRD_PATHS) as Kind[])).filter((k) => ISTIO_CRD_PATHS[k]);
    const listed = new Set<Kind>();
    const failing = new Set<Kind>();
    const problems = new Map<string, Problem[]>();
    const keysByKind = new Map<Kind, Set<string>>();
    const source = { kind: 'kubernetes' as const, shard: this.shard };

    const put = (kind: Kind, raw: KubeObject): void => {
      const key = keyOf(kind, raw);
      const { status: _status, ...doc } = raw as KubeObject & { status?: unknown };
      const r = decodeResource(doc, { origin: { kind: 'kubernetes', shard: this.shard, ref: key } });
      keysByKind.get(kind)!.add(key);
      if (!r.ok) {
        problems.set(key, r.violations.map((v) => ({ file: key, path: v.path, message: v.message })));
        return; // the last good version (if any) stays in force
      }
      problems.delete(key);
      const resource = r.resource as Resource;
      if (kind === 'ServiceEntry' || kind === 'WorkloadEntry') {
        const hub = convertToHub([resource], { ...source, ref: key });
        publisher.setGroup(key, hub.services, hub.workloads);
      } else {
        publisher.setGroup(key, [], [], [resource]);
      }
    };
    const drop = (kind: Kind, key: string): void => {
      keysByKind.get(kind)!.delete(key);
      problems.delete(key);
      publisher.deleteGroup(key);
    };

    for (const kind of kinds) {
      keysByKind.set(kind, new Set());
      listWatch<KubeObject>(
        client,
        ISTIO_CRD_PATHS[kind]!,
        {
          replace: (items) => {
            const keep = new Set(items.map((o) => keyOf(kind, o)));
            for (const key of [...keysByKind.get(kind)!]) if (!keep.has(key)) drop(kind, key);
            for (const o of items) put(kind, o);
            publisher.setProblems([...problems.values()].flat());
          },
          event: (type, o) => {
            if (type === 'DELETED') drop(kind, keyOf(kind, o));
            else put(kind, o);
            publisher.setProblems([...problems.values()].flat());
          },
          ok: () => {
            listed.add(kind);
            failing.delete(kind);
            if (listed.size === kinds.length && failing.size === 0) publisher.ready();
          },
          error: (err) => {
            failing.add(kind);
            publisher.fail(err);
          },
        },
        {
          pageSize: this.options.pageSize,
          watchTimeoutSeconds: this.options.watchTimeoutSeconds,
          backoff: this.options.backoff,
          clock: this.clock,
          random: this.options.random,
          missingRetryMs: this.options.missingCrdRetryMs ?? 60_000,
        },
        opened.signal,
      ).catch((err: unknown) => publisher.fail(err));
    }
    return publisher.changes(signal);
  }
}
