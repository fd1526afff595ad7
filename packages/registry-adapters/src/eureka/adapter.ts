/**
 * Eureka registry adapter (shard `eureka:<name>`).
 *
 * A full `GET {base}/apps`, then `GET {base}/apps/delta` every `deltaIntervalMs` merged by `actionType`
 * (ADDED/MODIFIED replace the instance, DELETED removes it). After each merge the client recomputes the
 * reconcile hash (`apps__hashcode`) and does a full fetch when it differs from the server's. Several server URLs
 * give failover: a request goes to the last server that answered and moves on to the next on failure. After any
 * failure the next successful round is a full fetch, so an outage longer than the server's delta retention
 * (about 3 minutes) loses nothing.
 */
import type { Problem, RegistryAdapter, RegistryChange, SourceKind } from '@trellis/model';
import { TrellisError } from '@trellis/model';
import type { FetchFunction } from '../runtime.js';
import { Backoff, childSignal, systemClock, type BackoffOptions, type Clock } from '../runtime.js';
import { ShardPublisher } from '../shard-publisher.js';
import {
  applicationsOf,
  convertEurekaApp,
  eurekaHashcode,
  eurekaInstanceKey,
  type EurekaApplicationsResponse,
  type EurekaConvertOptions,
  type EurekaInstance,
} from './convert.js';

/** Mapping options are the converter's (hostname template, namespace, protocol, …); the shard id comes from `name`. */
export interface EurekaAdapterOptions extends Omit<EurekaConvertOptions, 'shard'> {
  /** Base URLs, tried in order, e.g. `http://eureka:8761/eureka/v2` (stock) or `http://eureka:8761/eureka` (Spring). */
  readonly serviceUrls: readonly string[];
  /** Shard name: the shard id is `eureka:<name>`. Default `default`. */
  readonly name?: string;
  /** Interval between delta fetches, ms. Default 30 000. */
  readonly deltaIntervalMs?: number;
  /** Use `/apps/delta`; false does a full fetch every interval. Default true. */
  readonly useDelta?: boolean;
  /** Extra request headers (e.g. `authorization`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Per-request timeout, ms. Default 10 000. */
  readonly requestTimeoutMs?: number;
  readonly backoff?: BackoffOptions;
  readonly fetch?: FetchFunction;
  readonly clock?: Clock;
  readonly random?: () => number;
}

type Registry = Map<string, Map<string, EurekaInstance>>;

export class EurekaAdapter implements RegistryAdapter {
  readonly kind: SourceKind = 'eureka';
  readonly shard: string;
  private readonly fetchFn: FetchFunction;
  private readonly clock: Clock;
  private readonly urls: string[];
  private current = 0;

  constructor(private readonly options: EurekaAdapterOptions) {
    if (options.serviceUrls.length === 0) throw new TrellisError('TRELLIS_ERR_CONFIG', 'eureka: serviceUrls must not be empty');
    this.shard = `eureka:${options.name ?? 'default'}`;
    this.fetchFn = options.fetch ?? (globalThis.fetch as unknown as FetchFunction);
    this.clock = options.clock ?? systemClock;
    this.urls = options.serviceUrls.map((u) => u.replace(/\/+$/, ''));
  }

  watch(signal: AbortSignal): AsyncIterable<RegistryChange> {
    const publisher = new ShardPublisher('eureka', this.shard, this.clock);
    this.run(publisher, signal).catch((err: unknown) => publisher.fail(err));
    return publisher.changes(signal);
  }

  /** GET `path` from the current server, failing over through the others. */
  private async get(path: string, signal: AbortSignal): Promise<EurekaApplicationsResponse> {
    const errors: string[] = [];
    for (let n = 0; n < this.urls.length; n++) {
      const i = (this.current + n) % this.urls.length;
      const url = `${this.urls[i]}${path}`;
      const child = childSignal(signal, this.options.requestTimeoutMs ?? 10_000);
      try {
        const res = await this.fetchFn(url, { headers: { accept: 'application/json', ...this.options.headers }, signal: child.signal });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text.trim().slice(0, 200)}`);
        const body = JSON.parse(text) as EurekaApplicationsResponse;
        if (!body || typeof body !== 'object' || !body.applications) throw new Error('response has no "applications"');
        this.current = i;
        return body;
      } catch (err) {
        if (signal.aborted) throw err;
        errors.push(`GET ${url}: ${(err as Error)?.message ?? err}`);
      } finally {
        child.dispose();
      }
    }
    throw new TrellisError('TRELLIS_ERR_REGISTRY_UNREACHABLE', `eureka: every server failed: ${errors.join('; ')}`);
  }

  private async run(publisher: ShardPublisher, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.options.backoff, this.options.random);
    const interval = this.options.deltaIntervalMs ?? 30_000;
    const useDelta = this.options.useDelta ?? true;
    const convertOptions = { ...this.options, shard: this.shard };
    const problems = new Map<string, readonly Problem[]>();
    let registry: Registry | undefined;

    const publish = (apps: Iterable<string>, reg: Registry): void => {
      for (const app of apps) {
        const instances = reg.get(app);
        if (!instances || instances.size === 0) {
          publisher.deleteGroup(app);
          problems.delete(app);
          continue;
        }
        const r = convertEurekaApp(app, [...instances.values()], convertOptions);
        publisher.setGroup(app, r.service ? [r.service] : [], r.workloads);
        if (r.problems.length) problems.set(app, r.problems);
        else problems.delete(app);
      }
      publisher.setProblems([...problems.values()].flat());
    };

    const fullFetch = async (): Promise<Registry> => {
      const body = await this.get('/apps', signal);
      const reg: Registry = new Map();
      for (const a of applicationsOf(body)) {
        const m = new Map<string, EurekaInstance>();
        for (const i of a.instances) m.set(eurekaInstanceKey(i), i);
        reg.set(a.name, m);
      }
      const changed = new Set([...reg.keys(), ...publisher.groupNames()]);
      publish(changed, reg);
      return reg;
    };

    while (!signal.aborted) {
      try {
        if (!registry || !useDelta) {
          if (registry) await this.clock.sleep(interval, signal);
          if (signal.aborted) break;
          registry = await fullFetch();
        } else {
          await this.clock.sleep(interval, signal);
          if (signal.aborted) break;
          const delta = await this.get('/apps/delta', signal);
          const touched = new Set<string>();
          for (const a of applicationsOf(delta)) {
            for (const i of a.instances) {
              const app = i.app ?? a.name;
              const key = eurekaInstanceKey(i);
              const instances = registry.get(app) ?? new Map<string, EurekaInstance>();
              if (i.actionType === 'DELETED') instances.delete(key);
              else instances.set(key, i);
              if (instances.size > 0) registry.set(app, instances);
              else registry.delete(app);
              touched.add(app);
            }
          }
          const serverHash = delta.applications?.apps__hashcode;
          const localHash = eurekaHashcode([...registry.values()].flatMap((m) => [...m.values()]));
          if (serverHash !== undefined && serverHash !== localHash) {
            registry = await fullFetch();
          } else {
            publish(touched, registry);
          }
        }
        backoff.reset();
        publisher.ready();
      } catch (err) {
        if (signal.aborted) break;
        publisher.fail(err);
        registry = undefined; // the next success is a full fetch (the delta window may have passed)
        await this.clock.sleep(backoff.next(), signal);
      }
    }
  }
}
