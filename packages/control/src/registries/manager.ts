/**
 * Runs the adapters that `Registry` resources declare, and keeps them in step with the declarations: a new
 * resource starts its shards, a changed one restarts them (fresh adapter, same shard id, content replaced by the
 * new adapter's first snapshot), a removed one stops them and drops their shards from the aggregate.
 *
 * Declarations come from two places, unioned: the `--mesh-config` file (read once at start) and the live config
 * (Registry resources in the config directory or the Istio CRDs, fed through `reconcile()` on every snapshot).
 * A declaration that cannot be planned (unreadable credentials, a shard id taken twice) leaves a `stale` shard
 * named after the resource (`registry:<ns>/<name>`) with the error, so `trellisctl registry status` shows it.
 */
import type { Resource } from '@trellis/model';
import { TrellisError } from '@trellis/model';
import type { TokenReviewer } from '@trellis/registry-adapters/kubernetes';
import type { Aggregate } from '../aggregate/aggregate.js';
import { JOIN_TOKEN_PREFIX } from '../ca/join-tokens.js';
import { bearerToken, type AuthenticatedCall, type Authenticator, type Identity } from '../ca/authenticators.js';
import { planRegistries, type AdapterPlan, type PlanEnvironment } from './declared.js';

type Log = (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>) => void;

export interface RegistryManagerOptions extends PlanEnvironment {
  readonly aggregate: Aggregate;
  readonly log?: Log;
  /** Registry resources of the `--mesh-config` file; always declared. */
  readonly fixed?: readonly Resource[];
}

interface Running {
  readonly plan: AdapterPlan;
  readonly stop: AbortController;
  readonly done: Promise<void>;
  reviewer?: TokenReviewer;
}

export class RegistryManager {
  readonly #o: RegistryManagerOptions;
  readonly #running = new Map<string, Running>();
  readonly #problemShards = new Map<string, string>();
  #closed = false;
  #lastKey = '';

  constructor(options: RegistryManagerOptions) {
    this.#o = options;
  }

  /** Shards currently run for Registry resources. */
  get shards(): readonly string[] {
    return [...this.#running.keys()].sort();
  }

  /**
   * Brings the running adapters in line with `live` (all config resources; non-Registry kinds are ignored) plus the
   * fixed declarations. Cheap when nothing changed.
   */
  reconcile(live: readonly Resource[]): void {
    if (this.#closed) return;
    const declared = [...(this.#o.fixed ?? []), ...live.filter((r) => r.kind === 'Registry')];
    const key = JSON.stringify(declared.map((r) => [r.metadata.namespace, r.metadata.name, r.spec]));
    // Credentials may change without the resource changing (a rotated token file): re-plan on every call anyway,
    // but skip the work entirely when neither the resources nor the fingerprints moved.
    const { plans, problems } = planRegistries(declared, this.#o);
    const fps = plans.map((p) => `${p.shard}=${p.fingerprint}`).join(',') + JSON.stringify(problems);
    if (key + fps === this.#lastKey) return;
    this.#lastKey = key + fps;
    const log = this.#o.log;
    const agg = this.#o.aggregate;
    const wanted = new Map(plans.map((p) => [p.shard, p]));
    for (const [shard, run] of this.#running) {
      const next = wanted.get(shard);
      if (next && next.fingerprint === run.plan.fingerprint && next.rank === run.plan.rank) continue;
      this.#stop(shard, run);
      agg.removeShard(shard);
      if (!next) log?.('info', 'registry stopped', { shard, declaredBy: run.plan.declaredBy });
    }
    for (const p of plans) if (!this.#running.has(p.shard)) this.#start(p);
    const problemShards = new Map(problems.map((p) => [p.shard === undefined ? `registry:${p.declaredBy.slice('Registry/'.length)}` : `${p.shard}#${p.declaredBy}`, p.message]));
    for (const s of this.#problemShards.keys()) if (!problemShards.has(s)) agg.removeShard(s);
    for (const [s, message] of problemShards) {
      if (this.#problemShards.get(s) === message) continue;
      agg.removeShard(s);
      agg.addShard(s, 'file');
      agg.markStale(s, message);
      log?.('warn', 'registry not started', { shard: s, error: message });
    }
    this.#problemShards.clear();
    for (const [s, m] of problemShards) this.#problemShards.set(s, m);
  }

  #start(plan: AdapterPlan): void {
    const agg = this.#o.aggregate;
    if (agg.shards().some((s) => s.shard === plan.shard)) {
      // Another source (e.g. `--config-dir` itself as a `file` Registry) already feeds this shard: never take it over.
      this.#o.log?.('warn', 'registry not started', { shard: plan.shard, declaredBy: plan.declaredBy, error: 'the shard is already fed by another source' });
      return;
    }
    let adapter;
    try {
      adapter = plan.create();
    } catch (err) {
      agg.addShard(plan.shard, plan.kind, { rank: plan.rank });
      agg.markStale(plan.shard, (err as Error).message);
      return;
    }
    const stop = new AbortController();
    agg.addShard(plan.shard, plan.kind, plan.rank !== undefined ? { rank: plan.rank } : {});
    const done = agg.run(adapter, stop.signal);
    const run: Running = { plan, stop, done };
    if (plan.tokenReviewer) {
      try { run.reviewer = plan.tokenReviewer(); } catch { /* no reviewer: the shard's own status shows the error */ }
    }
    this.#running.set(plan.shard, run);
    this.#o.log?.('info', 'registry started', { shard: plan.shard, kind: plan.kind, declaredBy: plan.declaredBy, ...(plan.rank !== undefined ? { priority: plan.rank } : {}) });
  }

  #stop(shard: string, run: Running): void {
    run.stop.abort();
    this.#running.delete(shard);
  }

  /**
   * The CA's service-account-token authenticator: a bearer token that is not a join token is sent to the
   * TokenReview API of each Kubernetes registry in turn; the first that authenticates it gives the identity
   * (`ns/<namespace>/sa/<serviceAccount>`). With no Kubernetes registry, or no bearer token, it answers "not mine".
   */
  authenticator(): Authenticator {
    const self = this;
    return Object.freeze({
      name: 'kubernetes-token',
      async authenticate(call: AuthenticatedCall): Promise<Identity | null> {
        const tok = bearerToken(call);
        if (tok === undefined || tok.startsWith(JOIN_TOKEN_PREFIX)) return null;
        const reviewers = [...self.#running.values()].filter((r) => r.reviewer).sort((a, b) => a.plan.shard.localeCompare(b.plan.shard));
        if (reviewers.length === 0) return null;
        const reasons: string[] = [];
        for (const r of reviewers) {
          try {
            const res = await r.reviewer!.review(tok, AbortSignal.timeout(10_000));
            if (res.authenticated) {
              return Object.freeze({
                namespace: res.namespace, serviceAccount: res.serviceAccount, via: 'kubernetes-token',
                detail: Object.freeze({ cluster: r.plan.shard, username: res.username }),
              });
            }
            reasons.push(`${r.plan.shard}: ${res.reason}`);
          } catch (err) {
            // TRELLIS_ERR_TOKEN_REVIEW_UNAVAILABLE: the next cluster may still vouch; if none does, the reason says so.
            reasons.push(`${r.plan.shard}: ${(err as Error).message}`);
          }
        }
        throw new TrellisError('TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED', `service-account token refused (${reasons.join('; ')})`);
      },
    });
  }

  /** Stops every adapter and waits for their streams to end. */
  async close(): Promise<void> {
    this.#closed = true;
    const runs = [...this.#running.values()];
    this.#running.clear();
    for (const r of runs) r.stop.abort();
    await Promise.allSettled(runs.map((r) => r.done));
  }
}
