/**
 * Turns aggregate changes into versioned, frozen snapshots: debounced, with mesh settings resolved from
 * flags + MeshConfig and VIPs allocated. Subscribers (the ADS server) get every new snapshot.
 *
 * No snapshot is built until every shard delivered its first full snapshot, so a proxy never receives a mesh that
 * is missing a registry that is merely slow to start.
 */
import type { Resource } from '@trellis/model';
import type { Aggregate, AggregateView } from '../aggregate/aggregate.js';
import { VipAllocator } from '../aggregate/vip.js';
import { resolveMeshSettings, DEFAULT_REGISTRY_PRIORITY, type MeshConfigLike, type MeshDefaults } from '../config/mesh-settings.js';
import { buildSnapshot } from './build.js';
import { Debouncer, type Timers } from './debounce.js';
import type { MeshSettings, Snapshot } from './types.js';

export interface SnapshotControllerOptions {
  readonly aggregate: Aggregate;
  readonly meshDefaults: MeshDefaults;
  /** The `--mesh-config` resource, if any. */
  readonly meshFile?: MeshConfigLike;
  readonly stateDir?: string;
  readonly debounceAfterMs: number;
  readonly debounceMaxMs: number;
  readonly timers?: Timers;
  readonly now?: () => Date;
  readonly log?: (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>) => void;
}

export interface BuiltState {
  readonly snapshot: Snapshot;
  readonly view: AggregateView;
  /** Milliseconds the build took. */
  readonly buildMs: number;
}

export class SnapshotController {
  readonly #o: SnapshotControllerOptions;
  readonly #debouncer: Debouncer;
  readonly #listeners = new Set<(s: Snapshot) => void>();
  readonly #now: () => Date;
  #vips: VipAllocator | undefined;
  #counter = 0;
  #state: BuiltState | undefined;
  #lastError: string | undefined;

  constructor(options: SnapshotControllerOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
    this.#debouncer = new Debouncer({ afterMs: options.debounceAfterMs, maxMs: options.debounceMaxMs, timers: options.timers }, () => this.buildNow());
  }

  /** Called on every aggregate change. */
  changed(): void {
    this.#debouncer.trigger();
  }

  get current(): BuiltState | undefined {
    return this.#state;
  }

  /** Why there is no snapshot yet (for `/ready`), or undefined once there is one. */
  notReadyReason(): string | undefined {
    if (this.#state) return undefined;
    const pending = this.#o.aggregate.pending();
    if (pending.length > 0) return `waiting for the first snapshot of shard(s): ${pending.join(', ')}`;
    return this.#lastError ? `snapshot build failed: ${this.#lastError}` : 'first snapshot not built yet';
  }

  subscribe(fn: (s: Snapshot) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Builds a snapshot at once (the debouncer calls this; tests and start-up may too). */
  buildNow(): Snapshot | undefined {
    const agg = this.#o.aggregate;
    if (!agg.allReceived()) return undefined;
    const started = performance.now();
    try {
      let view = agg.view(DEFAULT_REGISTRY_PRIORITY);
      const mesh = this.#mesh(view.configs);
      if (mesh.registryPriority.join() !== DEFAULT_REGISTRY_PRIORITY.join()) view = agg.view(mesh.registryPriority);
      const vips = this.#allocator(mesh).allocate(
        view.services.filter((m) => m.service.addresses.length === 0 && !m.service.hostname.startsWith('*')).map((m) => m.service.hostname),
      );
      this.#counter += 1;
      const snapshot = buildSnapshot({ view, mesh, vips, version: `${this.#now().toISOString()}/${this.#counter}` });
      this.#state = Object.freeze({ snapshot, view, buildMs: performance.now() - started });
      this.#lastError = undefined;
      this.#o.log?.('debug', 'snapshot built', { version: snapshot.version, services: snapshot.services.length, ms: Math.round(this.#state.buildMs) });
      for (const fn of this.#listeners) fn(snapshot);
      return snapshot;
    } catch (err) {
      // A build failure keeps the previous snapshot in force.
      this.#lastError = (err as Error).message;
      this.#o.log?.('error', 'snapshot build failed', { error: this.#lastError });
      return undefined;
    }
  }

  #mesh(configs: readonly Resource[]): MeshSettings {
    const meshConfigs = configs.filter((c) => c.kind === 'MeshConfig') as MeshConfigLike[];
    return resolveMeshSettings(this.#o.meshDefaults, this.#o.meshFile, meshConfigs);
  }

  #allocator(mesh: MeshSettings): VipAllocator {
    if (!this.#vips || this.#vipsRange !== mesh.vipRange) {
      this.#vips = new VipAllocator({
        range: mesh.vipRange,
        stateDir: this.#o.stateDir,
        onPersistError: (err) => this.#o.log?.('warn', 'vip table not persisted', { error: err.message }),
      });
      this.#vipsRange = mesh.vipRange;
    }
    return this.#vips;
  }

  #vipsRange: string | undefined;

  close(): void {
    this.#debouncer.close();
    this.#listeners.clear();
  }
}
