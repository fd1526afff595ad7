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
import { encodeAny, encodeMessage, grpcService, TYPE_SHORT_NAME, TYPE_URL } from '@trellis/api';
import type { GeneratedResource, Generator, ProxyNode, Snapshot } from '../snapshot/types.js';
import { endpointOnlyDelta, type EndpointOnlyDelta } from '../snapshot/delta.js';
import { memoizeGenerators } from '../generate/index.js';
import { XDS_CHANNELS } from './events.js';
import { parseNode, type WireNode } from './node.js';

/** The order types are pushed in, so clusters precede their endpoints and listeners their routes (Envoy warming). */
const PUSH_ORDER: readonly string[] = [TYPE_URL.cluster, TYPE_URL.endpoint, TYPE_URL.listener, TYPE_URL.route];
/** Empty `resource_names` means every resource for these (the name table too: the agent asks for it as Istio's does). */
const WILDCARD_TYPES = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster, TYPE_URL.nameTable]);
const DISCOVERY_RESPONSE = 'type.googleapis.com/envoy.service.discovery.v3.DiscoveryResponse';
/** Responses queued on one stream (not yet taken by HTTP/2) beyond which snapshot pushes to it wait (see #written). */
const MAX_QUEUED = 8;
const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;

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
  /** A push of this type waits for the in-flight budget; `true` when it answers a request (sent even if unchanged). */
  waiting?: boolean;
  /** Resources sent, name → encoding (shared with other proxies through the content cache). */
  sentResources?: ReadonlyMap<string, Encoded>;
  /** The snapshot whose generation `sentResources` equals (for endpoint-only steps). */
  generatedFrom?: Snapshot;
  /** The subscription `sentResources` was selected by. */
  sentNames?: Set<string> | 'wildcard';
  /** What was sent last, shared with every proxy that got the same (`sent` and `sentResources` are its maps). */
  sentSelection?: Selection;
}

/**
 * A selection of encoded resources for one type, shared by every connection whose generator output (same array,
 * thanks to the scope memo) and subscription (same interned set) are the same: hashes, encodings and version are
 * computed once, not per proxy, and the maps are not copied per proxy.
 */
interface Selection {
  readonly version: string;
  readonly hashes: ReadonlyMap<string, string>;
  readonly encs: ReadonlyMap<string, Encoded>;
  /** What a response carries: every resource, or for an endpoint-only step only those that changed. */
  readonly anys: readonly Encoded['any'][];
}

interface Connection {
  readonly id: string;
  readonly stream: grpc.ServerDuplexStream<DiscoveryRequest, unknown>;
  readonly connectedAt: string;
  node?: ProxyNode;
  readonly types: Map<string, TypeState>;
  nonceCounter: number;
  /** Its responses queue up (client not reading): snapshot pushes wait until they drain (see #written). */
  blocked?: boolean;
  /** A push was skipped while blocked. */
  behind?: boolean;
  /** Bytes written to this stream and not yet taken by HTTP/2 (counted in the server's in-flight total). */
  inflight?: number;
  /** The stream ended: later write callbacks release nothing. */
  released?: boolean;
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

/**
 * The type URL of Istio's health reports: an agent sends a DiscoveryRequest of this type after each probe
 * transition; no `error_detail` means healthy, an `error_detail` carries why it is not. Nothing is sent back.
 */
export const HEALTH_TYPE_URL = 'istio.io/health';

/** Told about each stream's node, its end, and its health reports (WorkloadEntry auto-registration). */
export interface StreamObserver {
  connected(connection: string, node: ProxyNode, stream: grpc.ServerDuplexStream<unknown, unknown>): void;
  disconnected(connection: string): void;
  health(connection: string, report: { readonly healthy: boolean; readonly message?: string }): void;
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
  readonly streams?: StreamObserver;
  /**
   * Response bytes all streams may have written and HTTP/2 not yet taken (clients not reading fast enough) before
   * further responses wait; default 64 MiB. Bounds memory when a thousand proxies ask at once.
   */
  readonly maxInflightBytes?: number;
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
  /** The generators, memoised per scope (built-in ones only; see `memoizeGenerators`), by type; rewrapped if replaced. */
  readonly #gens = new Map<string, { readonly raw: Generator; readonly memo: Generator }>();
  /** Selections by generator output and interned subscription. */
  #selections = new WeakMap<readonly GeneratedResource[], Map<Set<string> | 'wildcard', Selection>>();
  /** Endpoint-only selections by previous selection, reduced outputs before and after, subscription. */
  #partials = new WeakMap<Selection, WeakMap<readonly GeneratedResource[], WeakMap<readonly GeneratedResource[], Map<Set<string> | 'wildcard', Selection>>>>();
  /** Snapshots reduced to the services of an endpoint-only step, so every proxy's generator call hits the memo. */
  #reduced = new WeakMap<Snapshot, WeakMap<ReadonlySet<string>, Snapshot>>();
  /** Response bytes written and not yet taken by HTTP/2, over all streams (see #track). */
  #inflight = 0;
  /** Connections with a push waiting for the in-flight budget, in arrival order. */
  readonly #waiting = new Set<Connection>();
  /** Encoded `resources` fields by selection (see #frame). */
  #bodies = new WeakMap<Selection, Uint8Array>();
  /** Subscriptions by content: connections asking for the same names share one set (and selections). */
  #names = new Map<string, Set<string>>();

  constructor(options: AdsServerOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
  }

  /** Adds the ADS service to a gRPC server (plaintext or TLS: the caller chooses the credentials). */
  addTo(server: grpc.Server): void {
    const definition = grpcService('envoy.service.discovery.v3.AggregatedDiscoveryService').service;
    // Responses may be written pre-encoded (a Buffer, see #frame); anything else goes through the usual serializer.
    const sotw = definition.StreamAggregatedResources;
    const service: grpc.ServiceDefinition = {
      ...definition,
      StreamAggregatedResources: { ...sotw, responseSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : sotw.responseSerialize(v)) },
    };
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
          if (conn.blocked) { conn.behind = true; continue; }
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
      if (conn.node) this.#o.streams?.disconnected(conn.id);
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
      this.#o.streams?.connected(conn.id, conn.node, conn.stream);
    }
    const type = req.type_url ?? '';
    if (type === '') return;
    if (type === HEALTH_TYPE_URL) {
      const e = req.error_detail;
      const unhealthy = !!e && (!!e.message || !!e.code);
      this.#o.streams?.health(conn.id, unhealthy ? { healthy: false, message: e?.message || `code ${e?.code}` } : { healthy: true });
      return;
    }
    const names = req.resource_names ?? [];
    const wanted: TypeState['names'] =
      names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(type)) ? 'wildcard' : this.#intern(names, conn.types.get(type)?.names);
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
    const gen = this.#generator(type);
    const started = performance.now();
    let sel: Selection;
    try {
      if (partial && ts.sentSelection && ts.sentNames && sameNames(ts.sentNames, ts.names) && gen) {
        const before = gen(this.#reduce(partial.prev, partial.hosts), node);
        const after = gen(this.#reduce(snapshot, partial.hosts), node);
        sel = this.#partialSelection(type, node, ts.sentSelection, before, after, ts.names);
      } else {
        sel = this.#selection(type, node, gen ? gen(snapshot, node) : [], ts.names);
      }
    } catch (err) {
      this.#o.log?.('error', 'generator failed', { proxy: node.id, type, error: (err as Error).message });
      return; // keep what the proxy has
    }
    const names = ts.names;
    const version = sel.version;
    if (!force && version === ts.sentVersion) {
      ts.generatedFrom = snapshot;
      return;
    }
    if (!force && ts.nack && ts.nack.version === version) return;
    if (this.#inflight >= (this.#o.maxInflightBytes ?? MAX_INFLIGHT_BYTES)) {
      ts.waiting = ts.waiting === true || force;
      this.#waiting.add(conn);
      return;
    }
    const nonce = `${conn.id}-${++conn.nonceCounter}`;
    const frame = this.#frame(sel, { version_info: version, type_url: type, nonce, control_plane: { identifier: this.#o.identifier } });
    this.#track(conn, frame.length);
    const accepted = conn.stream.write(frame, () => this.#written(conn, frame.length));
    if (accepted === false || conn.stream.writableLength >= MAX_QUEUED) conn.blocked = true;
    ts.sentVersion = version;
    ts.sentNonce = nonce;
    ts.sentAt = this.#now().toISOString();
    ts.sent = sel.hashes;
    ts.sentResources = sel.encs;
    ts.sentSelection = sel;
    ts.sentNames = names;
    ts.generatedFrom = snapshot;
    XDS_CHANNELS.push.publish({ proxy: node.id, type, version, resources: sel.anys.length, ms: performance.now() - started });
  }

  /**
   * A response left the stream's buffer. A blocked connection (a client not reading: responses queue up) gets no
   * pushes until its buffer is empty; then it gets one push of the current state, so a slow client costs at most
   * MAX_QUEUED responses of memory, never one per snapshot.
   */
  #written(conn: Connection, bytes: number): void {
    if (!conn.released) {
      conn.inflight = (conn.inflight ?? 0) - bytes;
      this.#inflight -= bytes;
      this.#resume();
    }
    if (!conn.blocked || conn.stream.writableLength > 0) return;
    conn.blocked = false;
    if (conn.behind && !this.#closed && this.#conns.has(conn.id)) {
      conn.behind = false;
      this.#pushConnection(conn, false);
    }
  }

  /** Counts bytes written to a stream until HTTP/2 takes them; a stream that ends gives its share back at once. */
  #track(conn: Connection, bytes: number): void {
    if (conn.inflight === undefined) {
      conn.inflight = 0;
      const release = (): void => {
        if (conn.released) return;
        conn.released = true;
        this.#inflight -= conn.inflight ?? 0;
        conn.inflight = 0;
        this.#waiting.delete(conn);
        this.#resume();
      };
      for (const event of ['close', 'error', 'cancelled', 'finish']) conn.stream.once(event, release);
    }
    conn.inflight += bytes;
    this.#inflight += bytes;
  }

  /** Sends what waited for the in-flight budget, connection by connection, while the budget allows. */
  #resume(): void {
    const budget = this.#o.maxInflightBytes ?? MAX_INFLIGHT_BYTES;
    for (const conn of this.#waiting) {
      if (this.#inflight >= budget || this.#closed) return;
      this.#waiting.delete(conn);
      if (!this.#conns.has(conn.id)) continue;
      for (const t of [...conn.types.keys()].sort((a, b) => order(a) - order(b))) {
        const ts = conn.types.get(t)!;
        if (ts.waiting === undefined) continue;
        const force = ts.waiting;
        ts.waiting = undefined;
        if (force) this.#pushType(conn, t, ts, true);
      }
      this.#pushConnection(conn, false);
    }
  }

  #generator(type: string): Generator | undefined {
    const raw = this.#o.generators[type];
    if (raw === undefined) return undefined;
    let g = this.#gens.get(type);
    if (g === undefined || g.raw !== raw) this.#gens.set(type, (g = { raw, memo: memoizeGenerators({ [type]: raw })[type] }));
    return g.memo;
  }

  /**
   * A DiscoveryResponse as bytes: the `resources` field of a selection is encoded once and shared by every proxy it
   * goes to; only the small per-response fields (version, type, nonce, identifier) are encoded per write. Protobuf
   * decoders accept fields in any order, and concatenated encodings are one message with the fields of both.
   */
  #frame(sel: Selection, head: Record<string, unknown>): Buffer {
    let body = this.#bodies.get(sel);
    if (body === undefined) {
      body = encodeMessage(DISCOVERY_RESPONSE, { resources: sel.anys });
      this.#bodies.set(sel, body);
    }
    const top = encodeMessage(DISCOVERY_RESPONSE, head);
    return Buffer.concat([top, body], top.length + body.length);
  }

  /** The resources of `generated` a subscription selects, encoded, hashed and versioned (memoised). */
  #selection(type: string, node: ProxyNode, generated: readonly GeneratedResource[], names: Set<string> | 'wildcard'): Selection {
    let byNames = this.#selections.get(generated);
    if (!byNames) this.#selections.set(generated, (byNames = new Map()));
    let sel = byNames.get(names);
    if (!sel) {
      const selected = names === 'wildcard' ? generated : generated.filter((r) => names.has(r.name));
      const hashes = new Map<string, string>();
      const encs = new Map<string, Encoded>();
      const anys: Encoded['any'][] = [];
      for (const r of selected) {
        const enc = this.#encode(type, node, r);
        if (!enc || encs.has(r.name)) continue;
        anys.push(enc.any);
        hashes.set(r.name, enc.hash);
        encs.set(r.name, enc);
      }
      sel = Object.freeze({ version: versionOf(hashes), hashes, encs, anys: Object.freeze(anys) });
      byNames.set(names, sel);
    }
    return sel;
  }

  /**
   * An endpoint-only step (EDS only): only the services whose endpoints changed were regenerated (`before`/`after`
   * from snapshots reduced to those hostnames); every other resource is what was sent last, and only changed
   * resources go on the wire (the version still names the whole set). EDS and RDS are not "all resources required"
   * types: in state of the world a client keeps a subscribed resource that a response leaves out (Envoy, gRFC A53).
   */
  #partialSelection(
    type: string, node: ProxyNode, prev: Selection, before: readonly GeneratedResource[], after: readonly GeneratedResource[], names: Set<string> | 'wildcard',
  ): Selection {
    let byBefore = this.#partials.get(prev);
    if (!byBefore) this.#partials.set(prev, (byBefore = new WeakMap()));
    let byAfter = byBefore.get(before);
    if (!byAfter) byBefore.set(before, (byAfter = new WeakMap()));
    let byNames = byAfter.get(after);
    if (!byNames) byAfter.set(after, (byNames = new Map()));
    let sel = byNames.get(names);
    if (sel) return sel;
    const stale = new Set(before.map((r) => r.name));
    const hashes = new Map<string, string>();
    const encs = new Map<string, Encoded>();
    for (const [name, enc] of prev.encs) {
      if (stale.has(name)) continue;
      hashes.set(name, enc.hash);
      encs.set(name, enc);
    }
    const onlyChanged = encs.size > 0;
    const anys: Encoded['any'][] = [];
    const selected = names === 'wildcard' ? after : after.filter((r) => names.has(r.name));
    for (const r of selected) {
      const enc = this.#encode(type, node, r);
      if (!enc || encs.has(r.name)) continue;
      if (!onlyChanged || prev.hashes.get(r.name) !== enc.hash) anys.push(enc.any);
      hashes.set(r.name, enc.hash);
      encs.set(r.name, enc);
    }
    sel = Object.freeze({ version: versionOf(hashes), hashes, encs, anys: Object.freeze(anys) });
    byNames.set(names, sel);
    return sel;
  }

  /** One resource's encoding: by body identity, else by content (two snapshot generations), else encoded now. */
  #encode(type: string, node: ProxyNode, r: GeneratedResource): Encoded | undefined {
    let enc = this.#encoded.get(r.body);
    if (enc) return enc;
    // Keyed by a digest of the JSON, not the JSON itself: a thousand proxies' worth of keys stays small.
    const key = createHash('sha1').update(type).update('\0').update(JSON.stringify(r.body)).digest('base64');
    enc = this.#byContent.get(key) ?? this.#byContentPrev.get(key);
    if (!enc) {
      try {
        const any = encodeAny(type, r.body as Record<string, unknown>);
        enc = Object.freeze({ any, hash: createHash('sha256').update(any.value).digest('base64url').slice(0, 16) });
      } catch (err) {
        this.#o.log?.('error', 'resource not encodable', { proxy: node.id, type, name: r.name, error: (err as Error).message });
        return undefined;
      }
    }
    this.#byContent.set(key, enc);
    this.#encoded.set(r.body, enc);
    return enc;
  }

  #reduce(s: Snapshot, hosts: ReadonlySet<string>): Snapshot {
    let byHosts = this.#reduced.get(s);
    if (!byHosts) this.#reduced.set(s, (byHosts = new WeakMap()));
    let r = byHosts.get(hosts);
    if (!r) {
      r = Object.freeze({ ...s, services: Object.freeze(s.services.filter((m) => hosts.has(m.service.hostname))) });
      byHosts.set(hosts, r);
    }
    return r;
  }

  /** One set per distinct subscription (never mutated once made). */
  #intern(names: readonly string[], current?: TypeState['names']): Set<string> {
    // An ACK repeats the subscription: keep the set without sorting a thousand names again.
    if (current instanceof Set && current.size === names.length && names.every((n) => current.has(n))) return current;
    const key = [...new Set(names)].sort().join('\n');
    let set = this.#names.get(key);
    if (!set) {
      if (this.#names.size >= 10_000) this.#names.clear();
      this.#names.set(key, (set = new Set(names)));
    }
    return set;
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
    this.#names.clear();
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
