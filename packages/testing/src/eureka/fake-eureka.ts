/**
 * A Netflix Eureka REST fake (JSON only), faithful to what `eureka-js-client` and registry readers use:
 * `POST {base}/apps/{APP}` (register, 204), `PUT {base}/apps/{APP}/{id}` (heartbeat; 404 when unknown so the
 * client re-registers), `DELETE {base}/apps/{APP}/{id}`, `GET {base}/apps`, `GET {base}/apps/delta` (changes of
 * the last `deltaRetentionMs`, ~3 min by default, latest per instance, with `actionType`), `GET {base}/apps/{APP}`
 * and `{APP}/{id}`, `PUT|DELETE …/status?value=` (status overrides), `PUT …/metadata?key=value`, and
 * `apps__hashcode` / `versions__delta` on the list bodies.
 *
 * `singleObjects: true` reproduces the XStream quirk: an `application` or `instance` list of one is sent as a
 * bare object. Leases are not evicted (tests deregister explicitly).
 */
import type http from 'node:http';
import { HttpFake, sendJson } from '../consul/http-fake.js';

export interface FakeEurekaInstanceInput {
  readonly app: string;
  readonly instanceId?: string;
  readonly hostName?: string;
  readonly ipAddr: string;
  readonly port?: number;
  /** Default: disabled. */
  readonly securePort?: number;
  readonly status?: string;
  readonly metadata?: Record<string, string>;
  readonly vipAddress?: string;
  readonly secureVipAddress?: string;
}

export interface FakeEurekaOptions {
  /** Path prefix of the REST API. Default `/eureka/v2` (stock Eureka; Spring uses `/eureka`). */
  readonly basePath?: string;
  /** How long delta entries are kept, ms. Default 180 000 (Eureka's 3 minutes). */
  readonly deltaRetentionMs?: number;
  /** Send one-element lists as bare objects (XStream quirk). Default false. */
  readonly singleObjects?: boolean;
  /** Clock for timestamps and delta retention. Default `Date.now`. */
  readonly now?: () => number;
}

type Instance = Record<string, unknown> & { instanceId: string; app: string; status: string };

export class FakeEureka extends HttpFake {
  private readonly apps = new Map<string, Map<string, Instance>>();
  private recent: { at: number; instance: Instance }[] = [];
  private version = 0;
  readonly basePath: string;
  private readonly now: () => number;
  /** Every request received (method, URL), for assertions. */
  readonly requests: { method: string; url: string; accept?: string }[] = [];
  /** Heartbeats received, by `APP/id`. */
  readonly heartbeats = new Map<string, number>();

  constructor(private readonly options: FakeEurekaOptions = {}) {
    super();
    this.basePath = (options.basePath ?? '/eureka/v2').replace(/\/+$/, '');
    this.now = options.now ?? Date.now;
  }

  /** `http://127.0.0.1:<port><basePath>` — what clients call the service URL. */
  get serviceUrl(): string {
    return `${this.url}${this.basePath}`;
  }

  private record(instance: Instance, actionType: 'ADDED' | 'MODIFIED' | 'DELETED'): void {
    this.version++;
    const copy = { ...instance, actionType, lastUpdatedTimestamp: String(this.now()) };
    if (actionType !== 'DELETED') this.apps.get(instance.app)?.set(instance.instanceId, copy);
    this.recent.push({ at: this.now(), instance: copy });
  }

  /** Registers (or re-registers) an instance the way `POST /apps/{APP}` does. */
  register(input: FakeEurekaInstanceInput | Record<string, unknown>): Instance {
    const i = normalize(input as Record<string, unknown>, this.now());
    const app = this.apps.get(i.app) ?? new Map<string, Instance>();
    this.apps.set(i.app, app);
    app.set(i.instanceId, i);
    this.record(i, 'ADDED');
    return i;
  }

  deregister(app: string, id: string): boolean {
    const APP = app.toUpperCase();
    const i = this.apps.get(APP)?.get(id);
    if (!i) return false;
    this.apps.get(APP)!.delete(id);
    if (this.apps.get(APP)!.size === 0) this.apps.delete(APP);
    this.record(i, 'DELETED');
    return true;
  }

  /** Status override, as `PUT …/status?value=` (or `undefined` to remove it, as `DELETE …/status`). */
  setStatus(app: string, id: string, value: string | undefined): boolean {
    const i = this.apps.get(app.toUpperCase())?.get(id);
    if (!i) return false;
    const next: Instance = value === undefined ? { ...i, status: 'UP', overriddenstatus: 'UNKNOWN' } : { ...i, status: value, overriddenstatus: value };
    this.record(next, 'MODIFIED');
    return true;
  }

  setMetadata(app: string, id: string, metadata: Record<string, string>): boolean {
    const i = this.apps.get(app.toUpperCase())?.get(id);
    if (!i) return false;
    const { '@class': _emptyMap, ...kept } = (i.metadata ?? {}) as Record<string, string>;
    this.record({ ...i, metadata: { ...kept, ...metadata } }, 'MODIFIED');
    return true;
  }

  /** Forgets the delta history (as if the retention window had passed). */
  expireDeltas(): void {
    this.recent = [];
  }

  instance(app: string, id: string): Instance | undefined {
    return this.apps.get(app.toUpperCase())?.get(id);
  }

  hashcode(): string {
    const counts = new Map<string, number>();
    for (const m of this.apps.values()) for (const i of m.values()) counts.set(i.status, (counts.get(i.status) ?? 0) + 1);
    return [...counts.keys()].sort().map((s) => `${s}_${counts.get(s)}_`).join('');
  }

  private list<T>(items: T[]): T | T[] {
    return this.options.singleObjects && items.length === 1 ? items[0] : items;
  }

  private appsBody(groups: Map<string, Instance[]>): unknown {
    return {
      applications: {
        versions__delta: String(this.version),
        apps__hashcode: this.hashcode(),
        application: this.list([...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, instances]) => ({ name, instance: this.list(instances) }))),
      },
    };
  }

  protected handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const url = new URL(req.url ?? '/', 'http://eureka');
    const method = req.method ?? 'GET';
    this.requests.push({ method, url: req.url ?? '/', accept: req.headers.accept });
    if (!url.pathname.startsWith(`${this.basePath}/apps`)) return notFound(res);
    const rest = url.pathname.slice(this.basePath.length + '/apps'.length).split('/').filter(Boolean).map(decodeURIComponent);
    const now = this.now();
    this.recent = this.recent.filter((r) => now - r.at <= (this.options.deltaRetentionMs ?? 180_000));

    if (rest.length === 0 && method === 'GET') {
      const groups = new Map<string, Instance[]>();
      for (const [name, m] of this.apps) if (m.size > 0) groups.set(name, [...m.values()].map(strip));
      return sendJson(res, 200, this.appsBody(groups));
    }
    if (rest.length === 1 && rest[0] === 'delta' && method === 'GET') {
      const latest = new Map<string, Instance>();
      for (const r of this.recent) latest.set(`${r.instance.app}/${r.instance.instanceId}`, r.instance);
      const groups = new Map<string, Instance[]>();
      for (const i of latest.values()) groups.set(i.app, [...(groups.get(i.app) ?? []), i]);
      return sendJson(res, 200, this.appsBody(groups));
    }
    const APP = rest[0]?.toUpperCase();
    if (rest.length === 1) {
      if (method === 'POST') {
        let parsed: { instance?: Record<string, unknown> };
        try {
          parsed = JSON.parse(body) as { instance?: Record<string, unknown> };
        } catch {
          res.writeHead(400);
          return void res.end('invalid JSON');
        }
        if (!parsed.instance) {
          res.writeHead(400);
          return void res.end('missing instance');
        }
        this.register({ ...parsed.instance, app: APP });
        res.writeHead(204);
        return void res.end();
      }
      if (method === 'GET') {
        const m = this.apps.get(APP);
        if (!m) return notFound(res);
        return sendJson(res, 200, { application: { name: APP, instance: this.list([...m.values()].map(strip)) } });
      }
    }
    const id = rest[1];
    const inst = id !== undefined ? this.apps.get(APP)?.get(id) : undefined;
    if (rest.length === 2) {
      if (method === 'PUT') {
        if (!inst) return notFound(res);
        this.heartbeats.set(`${APP}/${id}`, (this.heartbeats.get(`${APP}/${id}`) ?? 0) + 1);
        const info = inst.leaseInfo as Record<string, unknown>;
        inst.leaseInfo = { ...info, lastRenewalTimestamp: now };
        res.writeHead(200);
        return void res.end();
      }
      if (method === 'DELETE') {
        if (!inst) return notFound(res);
        this.deregister(APP, id!);
        res.writeHead(200);
        return void res.end();
      }
      if (method === 'GET') {
        if (!inst) return notFound(res);
        return sendJson(res, 200, { instance: strip(inst) });
      }
    }
    if (rest.length === 3 && rest[2] === 'status' && (method === 'PUT' || method === 'DELETE')) {
      if (!inst) return notFound(res);
      const value = url.searchParams.get('value');
      if (method === 'PUT' && !value) {
        res.writeHead(400);
        return void res.end();
      }
      this.setStatus(APP, id!, method === 'PUT' ? value! : undefined);
      if (method === 'DELETE' && value && value !== 'UP') this.setStatus(APP, id!, value);
      res.writeHead(200);
      return void res.end();
    }
    if (rest.length === 3 && rest[2] === 'metadata' && method === 'PUT') {
      if (!inst) return notFound(res);
      this.setMetadata(APP, id!, Object.fromEntries(url.searchParams));
      res.writeHead(200);
      return void res.end();
    }
    notFound(res);
  }
}

function notFound(res: http.ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('Not Found');
}

function strip(i: Instance): Instance {
  const { actionType: _a, ...rest } = i;
  return { ...rest, actionType: 'ADDED' } as Instance;
}

function portJson(p: unknown, fallbackEnabled: boolean): { $: number; '@enabled': string } {
  if (typeof p === 'number') return { $: p, '@enabled': String(fallbackEnabled) };
  const o = (p ?? {}) as { $?: unknown; '@enabled'?: unknown };
  return { $: Number(o.$ ?? 0), '@enabled': String(o['@enabled'] ?? fallbackEnabled) };
}

/** The stored (and served) form of an instance, as Eureka's JSON codec writes it. */
function normalize(i: Record<string, unknown>, now: number): Instance {
  const app = String(i.app).toUpperCase();
  const ipAddr = String(i.ipAddr ?? '');
  const hostName = String(i.hostName ?? ipAddr);
  const port = portJson(i.port, i.port !== undefined);
  const instanceId = String(i.instanceId ?? `${hostName}:${app.toLowerCase()}:${port.$}`);
  const dc = (i.dataCenterInfo ?? { '@class': 'com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo', name: 'MyOwn' }) as Record<string, unknown>;
  return {
    instanceId,
    hostName,
    app,
    ipAddr,
    status: String(i.status ?? 'UP'),
    overriddenstatus: String(i.overriddenstatus ?? 'UNKNOWN'),
    port,
    securePort: portJson(i.securePort ?? { $: 443, '@enabled': 'false' }, i.securePort !== undefined),
    countryId: 1,
    dataCenterInfo: dc,
    leaseInfo: { renewalIntervalInSecs: 30, durationInSecs: 90, registrationTimestamp: now, lastRenewalTimestamp: now, evictionTimestamp: 0, serviceUpTimestamp: now },
    metadata: (i.metadata as Record<string, string> | undefined) ?? { '@class': 'java.util.Collections$EmptyMap' },
    homePageUrl: `http://${hostName}:${port.$}/`,
    statusPageUrl: `http://${hostName}:${port.$}/info`,
    healthCheckUrl: `http://${hostName}:${port.$}/health`,
    vipAddress: String(i.vipAddress ?? app.toLowerCase()),
    secureVipAddress: String(i.secureVipAddress ?? app.toLowerCase()),
    isCoordinatingDiscoveryServer: 'false',
    lastUpdatedTimestamp: String(now),
    lastDirtyTimestamp: String(now),
    actionType: 'ADDED',
  };
}
