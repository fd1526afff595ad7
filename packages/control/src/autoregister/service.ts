/**
 * Auto-registration as the control plane runs it: the registry of connected workloads fed by the ADS server's
 * stream observer, authenticated by the stream's mTLS peer certificate (checked against the mesh CA exactly as
 * certificate renewals are), its shard in the aggregate, its metrics and its HTTP route. `main.ts` creates one,
 * hands `streams` to the ADS server and `routes` to the HTTP port, and gives it the CA and the metrics registry.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { RegistryChange } from '@trellis/model';
import type { Aggregate } from '../aggregate/aggregate.js';
import { peerCertificateAuthenticator, type Authenticator, type CertificateAuthority } from '../ca/index.js';
import type { HttpRoute } from '../http/server.js';
import type { Snapshot } from '../snapshot/types.js';
import type { StreamObserver } from '../xds/ads-server.js';
import { SHARD, type GroupLike } from './entry.js';
import { autoRegistrationMetrics, type AutoRegistrationMetrics } from './metrics.js';
import { WorkloadAutoRegistry, type AutoRegistryOptions, type WorkloadIdentity } from './registry.js';
import { workloadGroupRoutes } from './routes.js';

export interface AutoRegistrationOptions {
  readonly aggregate: Pick<Aggregate, 'addShard' | 'apply'>;
  /** The snapshot controller: WorkloadGroups are read from its current snapshot, and each new one re-evaluates. */
  readonly snapshots: { readonly current: { readonly snapshot: Snapshot } | undefined; subscribe(fn: (s: Snapshot) => void): () => void };
  readonly graceMs: number;
  readonly log: NonNullable<AutoRegistryOptions['log']>;
}

export class AutoRegistration {
  readonly registry: WorkloadAutoRegistry;
  readonly streams: StreamObserver;
  readonly routes: HttpRoute[];
  #authenticator: Authenticator | undefined;
  /** Streams whose certificate is being checked, with the last health report that arrived meanwhile. */
  readonly #pending = new Map<string, { report?: { readonly healthy: boolean; readonly message?: string } }>();
  readonly #unsubscribe: () => void;
  #metrics: AutoRegistrationMetrics | undefined;

  constructor(o: AutoRegistrationOptions) {
    const group = (namespace: string, name: string): GroupLike | undefined =>
      o.snapshots.current?.snapshot.config.workloadGroups.find((g) => g.metadata.namespace === namespace && g.metadata.name === name);
    // The shard is declared with the first registration, so a control plane without VMs lists no extra shard.
    let initial: RegistryChange | undefined;
    let declared = false;
    const sink = (c: RegistryChange): void => {
      if (!declared && c.type === 'snapshot') { initial = c; return; }
      if (!declared) {
        declared = true;
        o.aggregate.addShard(SHARD, 'control');
        if (initial) o.aggregate.apply(SHARD, initial);
      }
      o.aggregate.apply(SHARD, c);
    };
    this.registry = new WorkloadAutoRegistry({
      sink, group, graceMs: o.graceMs, log: o.log, onRefused: (r) => this.#metrics?.refused(r),
    });
    this.#unsubscribe = o.snapshots.subscribe(() => this.registry.refresh());
    this.routes = workloadGroupRoutes(group);
    this.streams = {
      connected: (connection, node, stream) => {
        if (typeof node.metadata.WORKLOAD_GROUP !== 'string') return;
        this.#pending.set(connection, {});
        void this.#identity(stream).then((identity) => {
          // The stream may have ended while its certificate was being checked.
          const pending = this.#pending.get(connection);
          if (!pending) return;
          this.#pending.delete(connection);
          this.registry.connect(connection, node, identity);
          if (pending.report) this.registry.health(connection, pending.report);
        });
      },
      disconnected: (connection) => {
        this.#pending.delete(connection);
        this.registry.disconnect(connection);
      },
      health: (connection, report) => {
        const pending = this.#pending.get(connection);
        if (pending) pending.report = report;
        else this.registry.health(connection, report);
      },
    };
  }

  /** Enables mTLS identities (without a CA every stream counts as unauthenticated and nothing registers). */
  useAuthority(ca: CertificateAuthority): void {
    this.#authenticator = peerCertificateAuthenticator(ca);
  }

  useMetrics(registry: Registry): void {
    this.#metrics = autoRegistrationMetrics(registry, () => this.registry.entries().length);
  }

  close(): void {
    this.#unsubscribe();
    this.registry.close();
  }

  async #identity(stream: grpc.ServerDuplexStream<unknown, unknown>): Promise<WorkloadIdentity | null | Error> {
    if (!this.#authenticator) return null;
    try {
      const id = await this.#authenticator.authenticate(stream);
      if (!id) return null;
      const spiffeId = (id.detail as { peerSpiffeId?: string } | undefined)?.peerSpiffeId;
      return { namespace: id.namespace, serviceAccount: id.serviceAccount, ...(spiffeId ? { spiffeId } : {}) };
    } catch (err) {
      return err as Error;
    }
  }
}
