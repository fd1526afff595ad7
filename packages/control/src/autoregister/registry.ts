/**
 * The registry of auto-registered workloads: agents that open an ADS stream with `WORKLOAD_GROUP` in their node
 * metadata get a WorkloadEntry in the `control:autoregistered` shard, built from the group's template.
 *
 * Contract:
 * - A stream registers only when its caller proved an identity (the mTLS peer certificate's SPIFFE id) equal to the
 *   group's namespace and service account, and the node's NAMESPACE is the group's. Anything else is refused with a
 *   `workload auto-registration refused` log line and `onRefused(reason)` (a metric); the stream itself stays open
 *   (it may still receive config).
 * - A group that is not (yet) in the snapshot leaves the connection pending; `refresh()` (called on every snapshot)
 *   retries it, so agents that reconnect to a restarted control plane register once the config has loaded.
 * - Several streams may hold one entry (an agent rotating its certificate opens the new stream before closing the
 *   old). When the last one closes, the entry stays for `graceMs` and is then removed; a stream for the same entry
 *   within the grace cancels the removal and the entry is not touched (no churn).
 * - Health: HEALTHY when the group has no probe; otherwise UNHEALTHY until the agent reports a healthy probe result
 *   (`istio.io/health` requests). The last report of any of the entry's streams wins.
 * - Nothing is persisted: a restarted control plane rebuilds every entry as agents reconnect.
 */
import type { Health, RegistryChange, ShardStatus, WorkloadEntry } from '@trellis/model';
import { workloadKey } from '@trellis/model';
import type { ProxyNode } from '../snapshot/types.js';
import { buildEntry, serviceAccountOf, SHARD, type AnnouncedWorkload, type GroupLike } from './entry.js';

/** The identity a stream's caller proved, or null when it presented no certificate (e.g. the plaintext port). */
export interface WorkloadIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly spiffeId?: string;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export type RefusalReason = 'no-client-certificate' | 'bad-client-certificate' | 'identity-mismatch' | 'no-address';

export interface AutoRegistryOptions {
  /** Receives the shard's changes (e.g. `(c) => aggregate.apply(SHARD, c)`); the first is an empty snapshot. */
  readonly sink: (change: RegistryChange) => void;
  /** The WorkloadGroup `namespace/name` in the current config, if any. */
  readonly group: (namespace: string, name: string) => GroupLike | undefined;
  /** How long an entry outlives its last stream. */
  readonly graceMs: number;
  readonly timers?: Timers;
  readonly log?: (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>) => void;
  readonly onRefused?: (reason: RefusalReason) => void;
}

interface Conn {
  readonly id: string;
  readonly announced: AnnouncedWorkload;
  readonly identity: WorkloadIdentity | null | Error;
  entryKey?: string;
  /** Why it has no entry (logged once per reason). */
  waiting?: string;
  refused?: RefusalReason;
}

interface Held {
  entry: WorkloadEntry;
  readonly connections: Set<string>;
  health: Health;
  message?: string;
  timer?: unknown;
}

const HEALTH_TYPE_NOTE = 'reported over ADS as istio.io/health';

/** What a node announces for auto-registration; undefined when it does not ask for it (no WORKLOAD_GROUP). */
export function announcedWorkload(node: ProxyNode): AnnouncedWorkload | undefined {
  const group = node.metadata.WORKLOAD_GROUP;
  if (typeof group !== 'string' || group === '') return undefined;
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(node.labels)) labels[k] = v;
  return Object.freeze({
    group,
    namespace: node.namespace,
    address: node.ipAddresses.find((ip) => ip !== '' && ip !== '0.0.0.0') ?? '',
    network: node.network,
    locality: node.locality.replace(/^\/+$/, ''),
    labels: Object.freeze(labels),
  });
}

export class WorkloadAutoRegistry {
  readonly #o: AutoRegistryOptions;
  readonly #timers: Timers;
  readonly #conns = new Map<string, Conn>();
  readonly #held = new Map<string, Held>();
  #closed = false;

  constructor(options: AutoRegistryOptions) {
    this.#o = options;
    this.#timers = options.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
    options.sink({ type: 'snapshot', services: [], workloads: [], configs: [], status: this.#status() });
  }

  /**
   * A stream announced `node`. `identity` is what its caller proved (an Error when its certificate was refused).
   * Streams whose node has no WORKLOAD_GROUP are ignored.
   */
  connect(connection: string, node: ProxyNode, identity: WorkloadIdentity | null | Error): void {
    if (this.#closed) return;
    const announced = announcedWorkload(node);
    if (!announced) return;
    const conn: Conn = { id: connection, announced, identity };
    this.#conns.set(connection, conn);
    this.#evaluate(conn);
  }

  disconnect(connection: string): void {
    const conn = this.#conns.get(connection);
    if (!conn) return;
    this.#conns.delete(connection);
    if (conn.entryKey) this.#release(conn.entryKey, connection);
  }

  /** A probe result from the stream's agent. Ignored for streams without an entry. */
  health(connection: string, report: { readonly healthy: boolean; readonly message?: string }): void {
    const key = this.#conns.get(connection)?.entryKey;
    const held = key ? this.#held.get(key) : undefined;
    if (!held) return;
    const health: Health = report.healthy ? 'HEALTHY' : 'UNHEALTHY';
    const message = report.healthy ? undefined : report.message;
    if (held.health === health && held.message === message) return;
    held.health = health;
    held.message = message;
    this.#o.log?.('info', 'workload health', { entry: key, health, ...(message ? { reason: message } : {}) });
    this.#upsert(held, { ...held.entry, health });
  }

  /** Re-evaluates every stream against the current config (called on each snapshot): pending ones may register now. */
  refresh(): void {
    if (this.#closed) return;
    for (const conn of [...this.#conns.values()]) this.#evaluate(conn);
  }

  /** The entries held now (for debugging and tests). */
  entries(): readonly WorkloadEntry[] {
    return [...this.#held.values()].map((h) => h.entry).sort((a, b) => workloadKey(a).localeCompare(workloadKey(b)));
  }

  /** Clears the grace timers; no change is emitted afterwards. */
  close(): void {
    this.#closed = true;
    for (const h of this.#held.values()) if (h.timer !== undefined) this.#timers.clearTimeout(h.timer);
  }

  #evaluate(conn: Conn): void {
    const a = conn.announced;
    const group = this.#o.group(a.namespace, a.group);
    if (!group) {
      if (conn.entryKey) this.#release(conn.entryKey, conn.id, 0);
      conn.entryKey = undefined;
      const why = `no WorkloadGroup ${a.namespace}/${a.group}`;
      if (conn.waiting !== why) this.#o.log?.('warn', 'workload auto-registration waiting', { connection: conn.id, reason: why });
      conn.waiting = why;
      return;
    }
    conn.waiting = undefined;
    const refusal = this.#check(conn, group);
    if (refusal) {
      if (conn.entryKey) this.#release(conn.entryKey, conn.id, 0);
      conn.entryKey = undefined;
      if (conn.refused !== refusal.reason) {
        conn.refused = refusal.reason;
        this.#o.log?.('warn', 'workload auto-registration refused', { connection: conn.id, group: `${group.metadata.namespace}/${group.metadata.name}`, reason: refusal.reason, detail: refusal.detail });
        this.#o.onRefused?.(refusal.reason);
      }
      return;
    }
    conn.refused = undefined;
    const probe = group.spec.probe !== undefined;
    const fresh = buildEntry(group, a, probe ? 'UNHEALTHY' : 'HEALTHY');
    const key = workloadKey(fresh);
    if (conn.entryKey && conn.entryKey !== key) this.#release(conn.entryKey, conn.id, 0);
    conn.entryKey = key;
    const held = this.#held.get(key);
    if (!held) {
      const h: Held = { entry: fresh, connections: new Set([conn.id]), health: fresh.health };
      this.#held.set(key, h);
      this.#o.log?.('info', 'workload registered', { entry: key, address: fresh.address, connection: conn.id, health: fresh.health, ...(probe ? { note: `health ${HEALTH_TYPE_NOTE}` } : {}) });
      this.#upsert(h, fresh);
      return;
    }
    held.connections.add(conn.id);
    if (held.timer !== undefined) {
      this.#timers.clearTimeout(held.timer);
      held.timer = undefined;
      this.#o.log?.('info', 'workload reconnected within grace', { entry: key, connection: conn.id });
    }
    // The group may have changed (labels, ports, probe); health stays what the agent last reported, unless the
    // probe went away (then the entry is HEALTHY) or appeared (then it waits for a report).
    const health: Health = !probe ? 'HEALTHY' : held.health;
    held.health = health;
    this.#upsert(held, { ...fresh, health });
  }

  #check(conn: Conn, group: GroupLike): { reason: RefusalReason; detail: string } | undefined {
    const id = conn.identity;
    const want = `ns/${group.metadata.namespace}/sa/${serviceAccountOf(group)}`;
    if (id instanceof Error) return { reason: 'bad-client-certificate', detail: id.message };
    if (id === null) return { reason: 'no-client-certificate', detail: `auto-registration needs an mTLS stream with a certificate for ${want} (the plaintext port never registers)` };
    if (id.namespace !== group.metadata.namespace || id.serviceAccount !== serviceAccountOf(group)) {
      return { reason: 'identity-mismatch', detail: `peer ${id.spiffeId ?? `ns/${id.namespace}/sa/${id.serviceAccount}`} is not ${want}` };
    }
    if (conn.announced.namespace !== group.metadata.namespace) {
      return { reason: 'identity-mismatch', detail: `node NAMESPACE ${conn.announced.namespace} is not ${group.metadata.namespace}` };
    }
    if (conn.announced.address === '') return { reason: 'no-address', detail: 'the node announced no INSTANCE_IPS' };
    return undefined;
  }

  /** Drops a stream from an entry; the entry goes after `graceMs` (or `delayMs`) once no stream holds it. */
  #release(key: string, connection: string, delayMs = this.#o.graceMs): void {
    const held = this.#held.get(key);
    if (!held || !held.connections.delete(connection) || held.connections.size > 0) return;
    if (held.timer !== undefined) this.#timers.clearTimeout(held.timer);
    const remove = (): void => {
      held.timer = undefined;
      if (this.#closed || held.connections.size > 0 || this.#held.get(key) !== held) return;
      this.#held.delete(key);
      this.#o.log?.('info', 'workload unregistered', { entry: key, reason: delayMs > 0 ? `no stream for ${delayMs} ms` : 'no longer valid' });
      this.#emit([], [key]);
    };
    if (delayMs <= 0) remove();
    else held.timer = this.#timers.setTimeout(remove, delayMs);
  }

  #upsert(held: Held, next: WorkloadEntry): void {
    const frozen = Object.freeze(next);
    if (JSON.stringify(frozen) === JSON.stringify(held.entry) && this.#emittedOnce.has(held)) return;
    held.entry = frozen;
    this.#emittedOnce.add(held);
    this.#emit([frozen], []);
  }

  readonly #emittedOnce = new WeakSet<Held>();

  #emit(upsert: WorkloadEntry[], remove: string[]): void {
    if (this.#closed) return;
    this.#o.sink({
      type: 'update',
      upsert: { services: [], workloads: upsert, configs: [] },
      remove: { services: [], workloads: remove, configs: [] },
      status: this.#status(),
    });
  }

  #status(): ShardStatus {
    return Object.freeze({ shard: SHARD, kind: 'control', state: 'synced', problems: Object.freeze([]) });
  }
}
