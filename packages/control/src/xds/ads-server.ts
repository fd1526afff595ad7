/**
 * Envoy ADS, state of the world: `envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources`.
 *
 * Per connection and type URL it keeps the subscription (wildcard or names), what was sent (version, nonce, the
 * hash of every resource), what was ACKed, and the last NACK. Versions are content hashes of the resource set sent
 * to that proxy for that type, so an unchanged type is never re-pushed (an endpoint-only change pushes EDS only) and
 * a NACKed version is not sent again: the proxy keeps its last ACKed config until the content changes.
 *
 * Requests with a stale nonce are ignored, as Envoy's protocol says. Empty `resource_names` means wildcard for LDS
 * and CDS (and `*` anywhere); for RDS and EDS it means "nothing".
 */
import { createHash, randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { encodeAny, grpcService, TYPE_SHORT_NAME, TYPE_URL } from '@trellis/api';
import type { GeneratedResource, Generator, ProxyNode, Snapshot } from '../snapshot/types.js';
import { endpointOnlyDelta, type EndpointOnlyDelta } from '../snapshot/delta.js';
import { XDS_CHANNELS } from './events.js';
import { parseNode, type WireNode } from './node.js';

/** The order types are pushed in, so clusters precede their endpoints and listeners their routes (Envoy warming). */
const PUSH_ORDER: readonly string[] = [TYPE_URL.cluster, TYPE_URL.endpoint, TYPE_URL.listener, TYPE_URL.route];
const WILDCARD_TYPES = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster]);

export type SyncState = 'SYNCED' | 'NOT SENT' | 'STALE' | 'NACKED';

interface DiscoveryRequest {
  version_info?: string;
  node?: WireNode | null;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}

interface Nack { readonly version: string; readonly nonce: string; readonly message: string; readonly at: string }

interface TypeState {
  names: Set<string> | 'wildcard';
  sentVersion?: string;
  sentNonce?: string;
  sentAt?: string;
  ackedVersion?: string;
  ackedNonce?: string;
  ackedAt?: string;
  nack?: Nack;
  /** Resources sent, name → hash. */
  sent?: ReadonlyMap<string, string>;
  /** Resources sent, name → encoding (shared with other proxies through the content cache). */
  sentResources?: ReadonlyMap<string, Encoded>;
  /** The snapshot whose generation `sentResources` equals (for endpoint-only steps). */
  generatedFrom?: Snapshot;
  /** The subscription `sentResources` was selected by. */
  sentNames?: Set<string> | 'wildcard';
}

interface Connection {
  readonly id: string;
  readonly stream: grpc.ServerDuplexStream<DiscoveryRequest, unknown>;
  readonly connectedAt: string;
  node?: ProxyNode;
  readonly types: Map<string, TypeState>;
  nonceCounter: number;
}

export interface TypeSync {
  readonly type: string;
  readonly short: string;
  readonly state: SyncState;
  readonly subscribed: readonly string[] | '*';
  readonly sentVersion?: string;
  readonly sentNonce?: string;
  readonly sentAt?: string;
  readonly ackedVersion?: string;
  readonly ackedAt?: string;
  readonly resources: number;
  readonly nack?: Nack;
}

export interface ProxySync {
  readonly proxy: string;
  readonly connection: string;
  readonly type: ProxyNode['type'];
  readonly namespace: string;
  readonly clusterId: string;
  readonly connectedAt: string;
  readonly types: readonly TypeSync[];
}

export interface SnapshotSource {
  current(): Snapshot | undefined;
}

export interface AdsServerOptions {
  /** Generators keyed by type URL. */
  readonly generators: Readonly<Record<string, Generator>>;
  readonly snapshots: SnapshotSource;
  /** Identifies this control plane in responses (`control_plane.identifier`). */
  readonly identifier: string;
  readonly now?: () => Date;
  readonly log?: (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>) => void;
}

interface Encoded { readonly any: { type_url: string; value: Uint8Array }; readonly hash: string }

export class AdsServer {
  readonly #o: AdsServerOptions;
  readonly #now: () => Date;
  readonly #conns = new Map<string, Connection>();
  readonly #connPrefix = randomBytes(3).toString('hex');
  #connCounter = 0;
  /** Encodings by generated body object: generators that share objects across proxies encode once. */
  #encoded = new WeakMap<object, Encoded>();
  /**
   * Encodings by content (type URL + JSON of the body), two generations: most resources are identical for many
   * proxies (outbound clusters, endpoints), and protobuf encoding, not generation, dominates push time. Entries
   * unused for a whole snapshot are dropped when the next one starts.
   */
  #byContent = new Map<string, Encoded>();
  #byContentPrev = new Map<string, Encoded>();
  #pushing = false;
  #again = false;
  #closed = false;

  constructor(options: AdsServerOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
  }

  /** Adds the ADS service to a gRPC server (plaintext or TLS: the caller chooses the credentials). */
  addTo(server: grpc.Server): void {
    const service = grpcService('envoy.service.discovery.v3.AggregatedDiscoveryService').service;
    server.addService(service, {
      StreamAggregatedResources: (stream: grpc.ServerDuplexStream<DiscoveryRequest, unknown>) => this.#onStream(stream),
      DeltaAggregatedResources: (stream: grpc.ServerDuplexStream<unknown, unknown>) => {
        stream.emit('error', { code: 12, details: 'delta xDS is not implemented; use state of the world (StreamAggregatedResources)' });
      },
    });
  }

  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Pushes a new snapshot to every connection; only resources whose content changed for that proxy are sent. */
  onSnapshot(): void {
    this.#byContentPrev = this.#byContent;
    this.#byContent = new Map();
    if (this.#pushing) { this.#again = true; return; }
    void this.#pushAll();
  }

  async #pushAll(): Promise<void> {
    this.#pushing = true;
    try {
      do {
        this.#again = false;
        let n = 0;
        for (const conn of [...this.#conns.values()]) {
          if (this.#closed) return;
          if (!this.#conns.has(conn.id)) continue;
          this.#pushConnection(conn, false);
          // Yield now and then so a push to a thousand proxies does not starve the event loop.
          if (++n % 25 === 0) await new Promise((r) => setImmediate(r));
        }
      } while (this.#again && !this.#closed);
    } finally {
      this.#pushing = false;
    }
  }

  #onStream(stream: grpc.ServerDuplexStream<DiscoveryRequest, unknown>): void {
    const conn: Connection = {
      id: `${this.#connPrefix}-${++this.#connCounter}`,
      stream,
      connectedAt: this.#now().toISOString(),
      types: new Map(),
      nonceCounter: 0,
    };
    this.#conns.set(conn.id, conn);
    const drop = (): void => {
      if (!this.#conns.delete(conn.id)) return;
      if (conn.node) XDS_CHANNELS.connection.publish({ proxy: conn.node.id, connection: conn.id, connected: false });
      this.#o.log?.('info', 'xds disconnected', { proxy: conn.node?.id, connection: conn.id });
    };
    stream.on('data', (req: DiscoveryRequest) => {
      try {
        this.#onRequest(conn, req);
      } catch (err) {
        this.#o.log?.('error', 'xds request failed', { proxy: conn.node?.id, error: (err as Error).message });
      }
    });
    stream.on('end', () => { drop(); stream.end(); });
    stream.on('error', drop);
    stream.on('close', drop);
    stream.on('cancelled', drop);
  }

  #onRequest(conn: Connection, req: DiscoveryRequest): void {
    if (!conn.node) {
      conn.node = parseNode(req.node);
      XDS_CHANNELS.connection.publish({ proxy: conn.node.id, connection: conn.id, connected: true });
      this.#o.log?.('info', 'xds connected', { proxy: conn.node.id, type: conn.node.type, connection: conn.id });
    }
    const type = req.type_url ?? '';
    if (type === '') return;
    const names = req.resource_names ?? [];
    const wanted: TypeState['names'] =
      names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(type)) ? 'wildcard' : new Set(names);
    let ts = conn.types.get(type);
    const initial = ts === undefined || !req.response_nonce;
    if (!ts) conn.types.set(type, (ts = { names: wanted }));
    if (req.response_nonce) {
      if (req.response_nonce !== ts.sentNonce) return; // stale: superseded by a later response
      if (req.error_detail && (req.error_detail.message || req.error_detail.code)) {
        const nack: Nack = Object.freeze({
          version: ts.sentVersion ?? '', nonce: req.response_nonce, message: req.error_detail.message ?? `code ${req.error_detail.code}`,
          at: this.#now().toISOString(),
        });
        ts.nack = nack;
        ts.names = wanted;
        XDS_CHANNELS.nack.publish({ proxy: conn.node.id, type, version: nack.version, message: nack.message });
        this.#o.log?.('warn', 'xds nack', { proxy: conn.node.id, type: TYPE_SHORT_NAME[type] ?? type, version: nack.version, error: nack.message });
        return;
      }
      ts.ackedVersion = ts.sentVersion;
      ts.ackedNonce = ts.sentNonce;
      ts.ackedAt = this.#now().toISOString();
      ts.nack = undefined;
    }
    const changed = !sameNames(ts.names, wanted);
    ts.names = wanted;
    if (initial || changed) this.#pushType(conn, type, ts, true);
  }

  #pushConnection(conn: Connection, force: boolean): void {
    const current = this.#o.snapshots.current();
    const node = conn.node;
    for (const t of [...conn.types.keys()].sort((a, b) => order(a) - order(b))) {
      const ts = conn.types.get(t)!;
      const prev = ts.generatedFrom;
      if (current && node && prev && prev !== current) {
        const delta = this.#delta(prev, current);
        if (delta && !node.ipAddresses.some((ip) => delta.addresses.has(ip))) {
          // Only EDS can differ; every other type would come out as it did from `prev`.
          if (t === TYPE_URL.endpoint) this.#pushType(conn, t, ts, force, { prev, hosts: delta.hosts });
          else ts.generatedFrom = current;
          continue;
        }
      }
      this.#pushType(conn, t, ts, force);
    }
  }


  /** Endpoint-only deltas between snapshot pairs, memoised for the push cycle (every connection asks the same). */
  #deltas = new Map<string, EndpointOnlyDelta | undefined>();

  #delta(prev: Snapshot, next: Snapshot): EndpointOnlyDelta | undefined {
    const key = `${prev.version}\0${next.version}`;
    if (!this.#deltas.has(key)) {
      if (this.#deltas.size > 16) this.#deltas.clear();
      this.#deltas.set(key, endpointOnlyDelta(prev, next));
    }
    return this.#deltas.get(key);
  }

  /**
   * Generates, encodes and (when the version differs, or `force`) sends one type to one connection. With `partial`
   * (an endpoint-only step, EDS only), only the services whose endpoints changed are regenerated, from snapshots
   * reduced to those hostnames; every other resource is what was sent last, and only changed resources go on the
   * wire (the version still names the whole set).
   */
  #pushType(conn: Connection, type: string, ts: TypeState, force: boolean, partial?: { prev: Snapshot; hosts: ReadonlySet<string> }): void {
    const snapshot = this.#o.snapshots.current();
    const node = conn.node;
    if (!snapshot || !node) return;
    if (ts.names !== 'wildcard' && ts.names.size === 0 && ts.sentNonce === undefined) return;
    const gen = this.#o.generators[type];
    const started = performance.now();
    let generated: readonly GeneratedResource[];
    const kept = new Map<string, Encoded>();
    try {
      if (partial && ts.sentResources && ts.sentNames && sameNames(ts.sentNames, ts.names) && gen) {
        const reduce = (s: Snapshot): Snapshot => Object.freeze({ ...s, services: s.services.filter((m) => partial.hosts.has(m.service.hostname)) });
        const stale = new Set(gen(reduce(partial.prev), node).map((r) => r.name));
        for (const [name, enc] of ts.sentResources) if (!stale.has(name)) kept.set(name, enc);
        generated = gen(reduce(snapshot), node);
      } else {
        generated = gen ? gen(snapshot, node) : [];
      }
    } catch (err) {
      this.#o.log?.('error', 'generator failed', { proxy: node.id, type, error: (err as Error).message });
      return; // keep what the proxy has
    }
    const names = ts.names;
    const selected = names === 'wildcard' ? generated : generated.filter((r) => names.has(r.name));
    const resources: { type_url: string; value: Uint8Array }[] = [];
    const hashes = new Map<string, string>();
    const sentResources = new Map<string, Encoded>();
    // EDS and RDS are not "all resources required" types: in state of the world a client keeps a subscribed
    // resource that a response leaves out (Envoy and gRFC A53), so a partial push sends only what changed.
    const onlyChanged = partial !== undefined && kept.size > 0;
    for (const [name, enc] of kept) {
      hashes.set(name, enc.hash);
      sentResources.set(name, enc);
    }
    for (const r of selected) {
      let enc = this.#encoded.get(r.body);
      if (!enc) {
        // Keyed by a digest of the JSON, not the JSON itself: a thousand proxies' worth of keys stays small.
        const key = createHash('sha1').update(type).update('\0').update(JSON.stringify(r.body)).digest('base64');
        enc = this.#byContent.get(key);
        if (!enc) {
          enc = this.#byContentPrev.get(key);
          if (!enc) {
            try {
              const any = encodeAny(type, r.body as Record<string, unknown>);
              enc = { any, hash: createHash('sha256').update(any.value).digest('base64url').slice(0, 16) };
            } catch (err) {
              this.#o.log?.('error', 'resource not encodable', { proxy: node.id, type, name: r.name, error: (err as Error).message });
              continue;
            }
          }
          this.#byContent.set(key, enc);
        }
        this.#encoded.set(r.body, enc);
      }
      if (sentResources.has(r.name)) continue;
      if (!onlyChanged || ts.sent?.get(r.name) !== enc.hash) resources.push(enc.any);
      hashes.set(r.name, enc.hash);
      sentResources.set(r.name, enc);
    }
    const version = versionOf(hashes);
    if (!force && version === ts.sentVersion) {
      ts.generatedFrom = snapshot;
      return;
    }
    if (!force && ts.nack && ts.nack.version === version) return;
    const nonce = `${conn.id}-${++conn.nonceCounter}`;
    conn.stream.write({
      version_info: version,
      resources,
      type_url: type,
      nonce,
      control_plane: { identifier: this.#o.identifier },
    });
    ts.sentVersion = version;
    ts.sentNonce = nonce;
    ts.sentAt = this.#now().toISOString();
    ts.sent = hashes;
    ts.sentResources = sentResources;
    ts.sentNames = names;
    ts.generatedFrom = snapshot;
    XDS_CHANNELS.push.publish({ proxy: node.id, type, version, resources: resources.length, ms: performance.now() - started });
  }

  /** Sync state of every connected proxy, for `/debug/syncz` and `trellisctl proxy-status`. */
  syncStatus(): ProxySync[] {
    const out: ProxySync[] = [];
    for (const c of this.#conns.values()) {
      if (!c.node) continue;
      const types: TypeSync[] = [];
      for (const t of [...new Set([...PUSH_ORDER, ...c.types.keys()])]) {
        const ts = c.types.get(t);
        types.push(Object.freeze({
          type: t,
          short: TYPE_SHORT_NAME[t] ?? t,
          state: syncState(ts),
          subscribed: ts === undefined ? [] : ts.names === 'wildcard' ? '*' : [...ts.names].sort(),
          ...(ts?.sentVersion !== undefined ? { sentVersion: ts.sentVersion, sentNonce: ts.sentNonce, sentAt: ts.sentAt } : {}),
          ...(ts?.ackedVersion !== undefined ? { ackedVersion: ts.ackedVersion, ackedAt: ts.ackedAt } : {}),
          resources: ts?.sent?.size ?? 0,
          ...(ts?.nack ? { nack: ts.nack } : {}),
        }));
      }
      out.push(Object.freeze({
        proxy: c.node.id, connection: c.id, type: c.node.type, namespace: c.node.namespace, clusterId: c.node.clusterId,
        connectedAt: c.connectedAt, types: Object.freeze(types),
      }));
    }
    return out.sort((a, b) => a.proxy.localeCompare(b.proxy) || a.connection.localeCompare(b.connection));
  }

  /** The connected proxy with this node id (or connection id), if any. */
  proxy(id: string): ProxyNode | undefined {
    for (const c of this.#conns.values()) if (c.node && (c.node.id === id || c.id === id)) return c.node;
    return undefined;
  }

  /**
   * What the generators give this proxy now, per type (short name → resources in proto field form, filtered by the
   * proxy's subscriptions when it has any), for `/debug/config_dump`. Undefined when the proxy is not connected.
   */
  configDump(id: string): { proxy: ProxyNode; version: string; types: Record<string, readonly GeneratedResource[]> } | undefined {
    const conn = [...this.#conns.values()].find((c) => c.node && (c.node.id === id || c.id === id));
    const snapshot = this.#o.snapshots.current();
    if (!conn?.node || !snapshot) return undefined;
    const types: Record<string, readonly GeneratedResource[]> = {};
    for (const t of PUSH_ORDER) {
      const gen = this.#o.generators[t];
      if (!gen) continue;
      const names = conn.types.get(t)?.names;
      let list = gen(snapshot, conn.node);
      if (names instanceof Set) list = list.filter((r) => names.has(r.name));
      types[TYPE_SHORT_NAME[t] ?? t] = list;
    }
    return { proxy: conn.node, version: snapshot.version, types };
  }

  /** Ends every stream; new streams are refused afterwards. */
  close(): void {
    this.#closed = true;
    for (const c of this.#conns.values()) {
      try { c.stream.end(); } catch { /* already gone */ }
    }
    this.#conns.clear();
    this.#encoded = new WeakMap();
    this.#byContent.clear();
    this.#byContentPrev.clear();
  }
}

function order(type: string): number {
  const i = PUSH_ORDER.indexOf(type);
  return i < 0 ? PUSH_ORDER.length : i;
}

function sameNames(a: TypeState['names'], b: TypeState['names']): boolean {
  if (a === 'wildcard' || b === 'wildcard') return a === b;
  if (a.size !== b.size) return false;
  for (const n of a) if (!b.has(n)) return false;
  return true;
}

function versionOf(hashes: ReadonlyMap<string, string>): string {
  const h = createHash('sha256');
  for (const name of [...hashes.keys()].sort()) h.update(name).update('\0').update(hashes.get(name)!).update('\n');
  return h.digest('base64url').slice(0, 12);
}

function syncState(ts: TypeState | undefined): SyncState {
  if (!ts || ts.sentNonce === undefined) return 'NOT SENT';
  if (ts.nack && ts.nack.nonce === ts.sentNonce) return 'NACKED';
  if (ts.ackedNonce === ts.sentNonce) return 'SYNCED';
  return 'STALE';
}
