/**
 * The proxy's current configuration: decoded xDS resources per type, replaced as whole frozen maps so a request
 * that read one map keeps a consistent view. Listeners on `change` rebuild what depends on the changed type.
 */
import {
  TYPE_URL, type ClusterConfig, type ClusterLoadAssignmentConfig, type ListenerConfig, type RouteConfig, type SecretConfig,
} from '@trellis/api';

export interface TypeState<T> {
  readonly version: string;
  readonly resources: ReadonlyMap<string, T>;
  /** Raw decoded protobuf objects (for /config_dump), by name. */
  readonly raw: ReadonlyMap<string, unknown>;
  /** Whether a response for this type has ever been accepted. */
  readonly received: boolean;
}

export interface ConfigTypes {
  listener: ListenerConfig;
  route: RouteConfig;
  cluster: ClusterConfig;
  endpoint: ClusterLoadAssignmentConfig;
  secret: SecretConfig;
}
export type ConfigKind = keyof ConfigTypes;

export const KIND_OF_TYPE_URL: Readonly<Record<string, ConfigKind>> = Object.freeze({
  [TYPE_URL.listener]: 'listener', [TYPE_URL.route]: 'route', [TYPE_URL.cluster]: 'cluster', [TYPE_URL.endpoint]: 'endpoint', [TYPE_URL.secret]: 'secret',
});

const EMPTY = <T>(): TypeState<T> => Object.freeze({ version: '', resources: new Map<string, T>(), raw: new Map(), received: false });

export class ConfigStore {
  private readonly watchers = new Set<(kind: ConfigKind) => void>();

  private readonly state: { [K in ConfigKind]: TypeState<ConfigTypes[K]> } = {
    listener: EMPTY(), route: EMPTY(), cluster: EMPTY(), endpoint: EMPTY(), secret: EMPTY(),
  };

  /** Calls `fn` after every replace; returns the unsubscribe function. */
  onChange(fn: (kind: ConfigKind) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  get<K extends ConfigKind>(kind: K): TypeState<ConfigTypes[K]> {
    return this.state[kind];
  }

  listeners(): ReadonlyMap<string, ListenerConfig> { return this.state.listener.resources; }
  routes(): ReadonlyMap<string, RouteConfig> { return this.state.route.resources; }
  clusters(): ReadonlyMap<string, ClusterConfig> { return this.state.cluster.resources; }
  endpoints(): ReadonlyMap<string, ClusterLoadAssignmentConfig> { return this.state.endpoint.resources; }
  secrets(): ReadonlyMap<string, SecretConfig> { return this.state.secret.resources; }

  /**
   * Replaces one type's resources. `merge` keeps names not in `resources` (SDS pushes secrets one stream at a
   * time); xDS state of the world replaces the set.
   */
  replace<K extends ConfigKind>(kind: K, version: string, resources: ReadonlyMap<string, ConfigTypes[K]>, raw: ReadonlyMap<string, unknown>, merge = false): void {
    const prev = this.state[kind];
    const r = merge ? new Map([...prev.resources, ...resources]) : new Map(resources);
    const w = merge ? new Map([...prev.raw, ...raw]) : new Map(raw);
    (this.state as Record<ConfigKind, TypeState<unknown>>)[kind] = Object.freeze({ version, resources: r, raw: w, received: true });
    for (const w of this.watchers) w(kind);
  }

  /** Names of RouteConfigurations the listeners reference through RDS. */
  routeNamesNeeded(): string[] {
    const names = new Set<string>();
    for (const l of this.listeners().values()) for (const fc of [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])]) {
      if (fc.terminal.kind === 'http' && fc.terminal.rds) names.add(fc.terminal.rds);
    }
    return [...names].sort();
  }

  /** EDS service names of the EDS clusters. */
  endpointNamesNeeded(): string[] {
    const names = new Set<string>();
    for (const c of this.clusters().values()) if (c.type === 'EDS') names.add(c.edsServiceName);
    return [...names].sort();
  }

  /** SDS names referenced by listeners' and clusters' TLS contexts. */
  secretNamesNeeded(): string[] {
    const names = new Set<string>();
    const add = (t: { certificateSds: readonly string[]; validationSds: string | null } | null) => {
      if (!t) return;
      t.certificateSds.forEach((n) => names.add(n));
      if (t.validationSds) names.add(t.validationSds);
    };
    for (const l of this.listeners().values()) for (const fc of [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])]) add(fc.tls);
    for (const c of this.clusters().values()) { add(c.tls); c.transportSocketMatches.forEach((m) => add(m.tls)); }
    return [...names].sort();
  }

  /**
   * Secret names whose absence does not hold readiness back: gateway credentials read from files that are missing
   * or invalid (their filter chain refuses connections, the other servers serve; see gateway/credentials.ts).
   */
  optionalSecret: (name: string) => boolean = () => false;

  /** What the first complete config still lacks (empty = ready). */
  missing(): string[] {
    const out: string[] = [];
    if (!this.state.listener.received) out.push('LDS');
    if (!this.state.cluster.received) out.push('CDS');
    for (const n of this.routeNamesNeeded()) if (!this.routes().has(n)) out.push(`RDS ${n}`);
    for (const n of this.endpointNamesNeeded()) if (!this.endpoints().has(n)) out.push(`EDS ${n}`);
    for (const n of this.secretNamesNeeded()) if (!this.secrets().has(n) && !this.optionalSecret(n)) out.push(`SDS ${n}`);
    return out;
  }
}
