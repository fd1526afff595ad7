/**
 * A Kubernetes API server fake, faithful to what informers and kubectl use:
 * discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`), list with `resourceVersion`
 * and `limit`/`continue`, watch streaming JSON lines (ADDED/MODIFIED/DELETED, BOOKMARK when
 * `allowWatchBookmarks=true`, ERROR 410 when the asked version is older than the kept history), get/create/
 * replace/merge-patch/delete of items, and `authentication.k8s.io/v1` TokenReview answered from a table.
 *
 * Resources: v1 services, pods, nodes, namespaces, configmaps; discovery.k8s.io/v1 endpointslices; Istio's
 * networking.istio.io/v1 and security.istio.io/v1 kinds (unless `istioCrds: false`).
 * Tests mutate state with `apply()`/`remove()`, force history loss with `expireHistory()` (open watches get an
 * ERROR 410 and new watches from older versions too), and simulate outages with `stop()`/`restart()`.
 */
import type http from 'node:http';
import { HttpFake, sendJson } from '../consul/http-fake.js';

export interface FakeKubeResource {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly singular: string;
  readonly kind: string;
  readonly namespaced: boolean;
  readonly shortNames?: readonly string[];
}

export const FAKE_KUBE_RESOURCES: readonly FakeKubeResource[] = [
  { group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true, shortNames: ['svc'] },
  { group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po'] },
  { group: '', version: 'v1', plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, shortNames: ['no'] },
  { group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'] },
  { group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'] },
  { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', singular: 'endpointslice', kind: 'EndpointSlice', namespaced: true },
];

/** Istio's CRDs (v1), served unless `istioCrds: false`. */
export const FAKE_ISTIO_RESOURCES: readonly FakeKubeResource[] = [
  ...(
    [
      ['serviceentries', 'ServiceEntry'],
      ['workloadentries', 'WorkloadEntry'],
      ['workloadgroups', 'WorkloadGroup'],
      ['virtualservices', 'VirtualService'],
      ['destinationrules', 'DestinationRule'],
      ['gateways', 'Gateway'],
      ['sidecars', 'Sidecar'],
    ] as const
  ).map(([plural, kind]) => ({ group: 'networking.istio.io', version: 'v1', plural, singular: kind.toLowerCase(), kind, namespaced: true })),
  ...(
    [
      ['peerauthentications', 'PeerAuthentication'],
      ['authorizationpolicies', 'AuthorizationPolicy'],
      ['requestauthentications', 'RequestAuthentication'],
    ] as const
  ).map(([plural, kind]) => ({ group: 'security.istio.io', version: 'v1', plural, singular: kind.toLowerCase(), kind, namespaced: true })),
];

export interface FakeKubeOptions {
  /** When set, requests must carry `Authorization: Bearer <token>` (else 401). */
  readonly token?: string;
  /** Interval of BOOKMARK events on watches that allow them, ms. Default 1000. */
  readonly bookmarkIntervalMs?: number;
  /** Serve Istio's CRDs (networking.istio.io/v1, security.istio.io/v1). Default true. */
  readonly istioCrds?: boolean;
}

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> & { name: string; namespace?: string } };
interface Event {
  readonly rv: number;
  readonly resource: FakeKubeResource;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: Obj;
}
interface Watcher {
  readonly resource: FakeKubeResource;
  readonly namespace?: string;
  send(e: Event): void;
  gone(): void;
}

const gv = (r: FakeKubeResource): string => (r.group ? `${r.group}/${r.version}` : r.version);

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class FakeKubernetes extends HttpFake {
  private rv = 1;
  /** Events at or below this version are forgotten: watching from an older version gets 410. */
  private compactedRv = 0;
  private readonly store = new Map<string, Map<string, Obj>>();
  private history: Event[] = [];
  private readonly watchers = new Set<Watcher>();
  private uid = 0;
  private readonly resources: readonly FakeKubeResource[];
  /** Tokens TokenReview accepts: token → service-account user (`system:serviceaccount:<ns>:<sa>`) or any username. */
  readonly tokens = new Map<string, { username: string; uid?: string; audiences?: string[] }>();
  /** Every request received (method, URL), for assertions. */
  readonly requests: { method: string; url: string }[] = [];

  constructor(private readonly options: FakeKubeOptions = {}) {
    super();
    this.resources = options.istioCrds === false ? FAKE_KUBE_RESOURCES : [...FAKE_KUBE_RESOURCES, ...FAKE_ISTIO_RESOURCES];
    for (const r of this.resources) this.store.set(r.plural, new Map());
    this.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    this.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } });
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  private resourceOfKind(kind: string): FakeKubeResource {
    const r = this.resources.find((x) => x.kind === kind);
    if (!r) throw new Error(`fake kubernetes: unknown kind ${kind}`);
    return r;
  }

  private write(r: FakeKubeResource, type: Event['type'], object: Obj): Obj {
    const key = r.namespaced ? `${object.metadata.namespace}/${object.metadata.name}` : object.metadata.name;
    this.rv++;
    const stored: Obj = { ...object, apiVersion: gv(r), kind: r.kind, metadata: { ...object.metadata, resourceVersion: String(this.rv) } };
    if (type === 'DELETED') this.store.get(r.plural)!.delete(key);
    else this.store.get(r.plural)!.set(key, stored);
    const e: Event = { rv: this.rv, resource: r, type, object: stored };
    this.history.push(e);
    for (const w of this.watchers) if (w.resource === r && (!w.namespace || w.namespace === object.metadata.namespace)) w.send(e);
    return stored;
  }

  /** Creates or replaces an object (by kind, namespace, name). Returns the stored object. */
  apply(object: Record<string, unknown>): Obj {
    const o = object as Obj;
    const r = this.resourceOfKind(String(o.kind));
    const meta = { ...o.metadata };
    if (r.namespaced) meta.namespace ??= 'default';
    else delete meta.namespace;
    const existing = this.get(r.kind, meta.name, meta.namespace);
    meta.uid = (existing?.metadata.uid as string | undefined) ?? `uid-${++this.uid}`;
    meta.creationTimestamp = (existing?.metadata.creationTimestamp as string | undefined) ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    return this.write(r, existing ? 'MODIFIED' : 'ADDED', { ...o, metadata: meta } as Obj);
  }

  /** Deletes an object; false when absent. */
  remove(kind: string, name: string, namespace = 'default'): boolean {
    const r = this.resourceOfKind(kind);
    const existing = this.get(kind, name, namespace);
    if (!existing) return false;
    this.write(r, 'DELETED', existing);
    return true;
  }

  get(kind: string, name: string, namespace = 'default'): Obj | undefined {
    const r = this.resourceOfKind(kind);
    return this.store.get(r.plural)!.get(r.namespaced ? `${namespace}/${name}` : name);
  }

  list(kind: string): Obj[] {
    return [...this.store.get(this.resourceOfKind(kind).plural)!.values()];
  }

  /**
   * Forgets all history (as etcd compaction does): open watches get an ERROR event with code 410 and end, and
   * any list continue token or watch from an older version gets 410 Gone.
   */
  expireHistory(): void {
    this.compactedRv = this.rv;
    this.history = [];
    for (const w of [...this.watchers]) w.gone();
  }

  /** Number of open watch streams. */
  get openWatches(): number {
    return this.watchers.size;
  }

  protected handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const url = new URL(req.url ?? '/', 'http://kube');
    const method = req.method ?? 'GET';
    this.requests.push({ method, url: req.url ?? '/' });
    if (this.options.token !== undefined && req.headers.authorization !== `Bearer ${this.options.token}`) {
      return sendJson(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
    }
    const p = url.pathname.replace(/\/+$/, '');
    if (p === '/version') {
      return sendJson(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0-trellis-fake', platform: 'linux/amd64' });
    }
    if (p === '/api') {
      return sendJson(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }] });
    }
    if (p === '/apis') {
      const names = [...new Set(this.resources.map((r) => r.group).filter(Boolean)), 'authentication.k8s.io'];
      const groups = names.map((name) => ({
        name,
        versions: [{ groupVersion: `${name}/v1`, version: 'v1' }],
        preferredVersion: { groupVersion: `${name}/v1`, version: 'v1' },
      }));
      return sendJson(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups });
    }
    if (p === '/apis/authentication.k8s.io/v1') {
      return sendJson(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: 'authentication.k8s.io/v1',
        resources: [{ name: 'tokenreviews', singularName: 'tokenreview', namespaced: false, kind: 'TokenReview', verbs: ['create'] }],
      });
    }
    if (p === '/apis/authentication.k8s.io/v1/tokenreviews' && method === 'POST') return this.tokenReview(res, body);
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))(?:\/(.*))?$/.exec(p);
    if (!m) return sendJson(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const group = m[2] ?? '';
    const version = m[1] ?? m[3];
    const resources = this.resources.filter((r) => r.group === group && r.version === version);
    if (resources.length === 0) return sendJson(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const rest = (m[4] ?? '').split('/').filter(Boolean);
    if (rest.length === 0) {
      return sendJson(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: group ? `${group}/${version}` : version,
        resources: resources.map((r) => ({
          name: r.plural,
          singularName: r.singular,
          namespaced: r.namespaced,
          kind: r.kind,
          verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
          ...(r.shortNames ? { shortNames: r.shortNames } : {}),
        })),
      });
    }
    let namespace: string | undefined;
    let plural: string;
    let name: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      plural = rest[2];
      name = rest[3];
    } else {
      plural = rest[0];
      name = rest[1];
    }
    const r = resources.find((x) => x.plural === plural);
    if (!r || (namespace && !r.namespaced)) return sendJson(res, 404, status(404, 'NotFound', `the server could not find the requested resource`));
    if (name === undefined) {
      if (method === 'GET') {
        const q = url.searchParams;
        if (q.get('watch') === '1' || q.get('watch') === 'true') return this.watch(req, res, r, namespace, q);
        return this.listCollection(res, r, namespace, q);
      }
      if (method === 'POST') return this.create(res, r, namespace, body);
      return sendJson(res, 405, status(405, 'MethodNotAllowed', `${method} is not supported on a collection`));
    }
    return this.item(req, res, r, namespace, name, method, body);
  }

  private listCollection(res: http.ServerResponse, r: FakeKubeResource, namespace: string | undefined, q: URLSearchParams): void {
    let items = [...this.store.get(r.plural)!.values()].filter((o) => !namespace || o.metadata.namespace === namespace);
    items.sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
    const selector = q.get('labelSelector');
    if (selector) {
      const reqs = selector.split(',').map((s) => s.split('='));
      items = items.filter((o) => reqs.every(([k, v]) => ((o.metadata.labels ?? {}) as Record<string, string>)[k] === v));
    }
    let offset = 0;
    let listRv = this.rv;
    const token = q.get('continue');
    if (token) {
      try {
        const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { rv: number; offset: number };
        offset = t.offset;
        listRv = t.rv;
      } catch {
        return sendJson(res, 400, status(400, 'BadRequest', 'invalid continue token'));
      }
      if (listRv < this.compactedRv) {
        return sendJson(res, 410, status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.'));
      }
    }
    const limit = Number(q.get('limit') ?? '0');
    const page = limit > 0 ? items.slice(offset, offset + limit) : items.slice(offset);
    const more = limit > 0 && offset + limit < items.length;
    sendJson(res, 200, {
      kind: `${r.kind}List`,
      apiVersion: gv(r),
      metadata: {
        resourceVersion: String(listRv),
        ...(more ? { continue: Buffer.from(JSON.stringify({ rv: listRv, offset: offset + limit })).toString('base64url'), remainingItemCount: items.length - offset - limit } : {}),
      },
      items: page,
    });
  }

  private watch(req: http.IncomingMessage, res: http.ServerResponse, r: FakeKubeResource, namespace: string | undefined, q: URLSearchParams): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache, private' });
    res.flushHeaders(); // as the API server does: clients wait for the headers before reading events
    const write = (e: unknown): void => {
      if (!res.writableEnded) res.write(`${JSON.stringify(e)}\n`);
    };
    const fromParam = q.get('resourceVersion');
    const from = fromParam ? Number(fromParam) : undefined;
    if (from !== undefined && from !== 0 && from < this.compactedRv) {
      write({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`) });
      res.end();
      return;
    }
    const inScope = (o: Obj): boolean => !namespace || o.metadata.namespace === namespace;
    if (!from) {
      // No version (or "0"): synthetic ADDED for what exists, then changes.
      for (const o of this.store.get(r.plural)!.values()) if (inScope(o)) write({ type: 'ADDED', object: o });
    } else {
      for (const e of this.history) if (e.rv > from && e.resource === r && inScope(e.object)) write({ type: e.type, object: e.object });
    }
    let timer: NodeJS.Timeout | undefined;
    let bookmarks: NodeJS.Timeout | undefined;
    const watcher: Watcher = {
      resource: r,
      namespace,
      send: (e) => write({ type: e.type, object: e.object }),
      gone: () => {
        write({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from ?? 0} (${this.compactedRv})`) });
        end();
      },
    };
    const end = (): void => {
      this.watchers.delete(watcher);
      clearTimeout(timer);
      clearInterval(bookmarks);
      if (!res.writableEnded) res.end();
    };
    this.watchers.add(watcher);
    if (q.get('allowWatchBookmarks') === 'true') {
      bookmarks = setInterval(
        () => write({ type: 'BOOKMARK', object: { kind: r.kind, apiVersion: gv(r), metadata: { resourceVersion: String(this.rv) } } }),
        this.options.bookmarkIntervalMs ?? 1000,
      );
    }
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    if (timeout > 0) timer = setTimeout(end, timeout * 1000);
    req.on('close', end);
    res.on('close', end);
  }

  private create(res: http.ServerResponse, r: FakeKubeResource, namespace: string | undefined, body: string): void {
    let o: Obj;
    try {
      o = JSON.parse(body) as Obj;
    } catch {
      return sendJson(res, 400, status(400, 'BadRequest', 'invalid JSON body'));
    }
    if (!o?.metadata?.name) return sendJson(res, 422, status(422, 'Invalid', 'metadata.name: Required value'));
    if (o.kind && o.kind !== r.kind) return sendJson(res, 400, status(400, 'BadRequest', `kind ${String(o.kind)} does not match ${r.kind}`));
    const ns = r.namespaced ? (namespace ?? o.metadata.namespace ?? 'default') : undefined;
    if (this.get(r.kind, o.metadata.name, ns)) {
      return sendJson(res, 409, status(409, 'AlreadyExists', `${r.plural} "${o.metadata.name}" already exists`));
    }
    sendJson(res, 201, this.apply({ ...o, kind: r.kind, metadata: { ...o.metadata, ...(ns ? { namespace: ns } : {}) } }));
  }

  private item(req: http.IncomingMessage, res: http.ServerResponse, r: FakeKubeResource, namespace: string | undefined, name: string, method: string, body: string): void {
    const ns = r.namespaced ? (namespace ?? 'default') : undefined;
    const existing = this.get(r.kind, name, ns);
    const notFound = (): void => sendJson(res, 404, status(404, 'NotFound', `${r.plural} "${name}" not found`));
    if (method === 'GET') return existing ? sendJson(res, 200, existing) : notFound();
    if (method === 'DELETE') {
      if (!existing) return notFound();
      this.remove(r.kind, name, ns);
      return sendJson(res, 200, existing);
    }
    let parsed: Obj;
    try {
      parsed = JSON.parse(body) as Obj;
    } catch {
      return sendJson(res, 400, status(400, 'BadRequest', 'invalid JSON body'));
    }
    if (method === 'PUT') {
      if (!existing) return notFound();
      const want = parsed.metadata?.resourceVersion;
      if (want && want !== existing.metadata.resourceVersion) {
        return sendJson(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${r.plural} "${name}": the object has been modified`));
      }
      return sendJson(res, 200, this.apply({ ...parsed, kind: r.kind, metadata: { ...parsed.metadata, name, ...(ns ? { namespace: ns } : {}) } }));
    }
    if (method === 'PATCH') {
      if (!existing) return notFound();
      const type = req.headers['content-type'] ?? '';
      if (!/merge-patch\+json|strategic-merge-patch\+json/.test(type)) {
        return sendJson(res, 415, status(415, 'UnsupportedMediaType', `the fake supports merge and strategic-merge patches, not ${type}`));
      }
      // A strategic merge patch is applied as a JSON merge patch (lists are replaced, not merged by key).
      const merged = mergePatch(existing, parsed) as Obj;
      return sendJson(res, 200, this.apply({ ...merged, kind: r.kind, metadata: { ...merged.metadata, name, ...(ns ? { namespace: ns } : {}) } }));
    }
    sendJson(res, 405, status(405, 'MethodNotAllowed', `${method} not allowed`));
  }

  private tokenReview(res: http.ServerResponse, body: string): void {
    let review: { spec?: { token?: string; audiences?: string[] } };
    try {
      review = JSON.parse(body) as typeof review;
    } catch {
      return sendJson(res, 400, status(400, 'BadRequest', 'invalid JSON body'));
    }
    const token = review.spec?.token ?? '';
    const entry = this.tokens.get(token);
    const wanted = review.spec?.audiences;
    const audienceOk = !entry?.audiences || !wanted || wanted.some((a) => entry.audiences!.includes(a));
    const ok = entry !== undefined && audienceOk;
    sendJson(res, 201, {
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: review.spec ?? {},
      status: ok
        ? {
            authenticated: true,
            user: { username: entry.username, uid: entry.uid ?? `uid-${entry.username}`, groups: ['system:serviceaccounts', 'system:authenticated'] },
            audiences: entry.audiences ?? wanted ?? ['https://kubernetes.default.svc.cluster.local'],
          }
        : { authenticated: false, error: entry ? 'token audiences do not match' : '[invalid bearer token, square/go-jose: error in cryptographic primitive]' },
    });
  }

  /** A kubeconfig (YAML) pointing at this fake over plain HTTP, for kubectl and client-node. */
  kubeconfig(): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: fake`,
      `  cluster:`,
      `    server: ${this.url}`,
      // client-node refuses plain http unless told to skip TLS verification.
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: fake',
      '  user:',
      `    token: ${this.options.token ?? 'unused'}`,
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      '    user: fake',
      '    namespace: default',
      'current-context: fake',
      '',
    ].join('\n');
  }
}
