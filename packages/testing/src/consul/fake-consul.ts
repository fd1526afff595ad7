/**
 * A Consul HTTP API fake, faithful to what registry clients use:
 * `GET /v1/catalog/services`, `GET /v1/health/service/:name` (`passing`, `tag`, `ns`, `dc`), blocking queries
 * (`index`, `wait` default 5 m capped at 10 m, up to wait/16 jitter, `X-Consul-Index` on every answer), ACL token
 * (`X-Consul-Token` or `?token=`), and `PUT /v1/catalog/register|deregister` so a real client can write too.
 *
 * Tests mutate state with `register()`, `deregister()`, `setCheck()`; `stop()`/`restart()` simulate an outage.
 */
import type http from 'node:http';
import { HttpFake, delay, sendJson } from './http-fake.js';

export type ConsulCheckStatus = 'passing' | 'warning' | 'critical';

export interface FakeConsulInstance {
  readonly node: string;
  /** Node address. Default `127.0.0.1`. */
  readonly nodeAddress?: string;
  readonly nodeMeta?: Record<string, string>;
  /** Default: the fake's datacenter. */
  readonly datacenter?: string;
  /** Service ID, unique per node. Default `service`. */
  readonly id?: string;
  readonly service: string;
  readonly address?: string;
  readonly port: number;
  readonly tags?: string[];
  readonly meta?: Record<string, string>;
  readonly weights?: { Passing: number; Warning: number };
  /** Consul Enterprise namespace. Default `default`. */
  readonly namespace?: string;
  /** Status of the instance's one service check. Default `passing`. */
  readonly check?: ConsulCheckStatus;
}

export interface FakeConsulOptions {
  /** Datacenter answered when `?dc=` is absent. Default `dc1`. */
  readonly datacenter?: string;
  /** Other datacenters the fake serves (a request for an unknown one gets 500 "No path to datacenter"). */
  readonly datacenters?: readonly string[];
  /** When set, every request must carry this ACL token (else 403). */
  readonly token?: string;
  /** Upper bound of a blocking query's wait, ms (tests shorten it). Default 10 minutes, Consul's cap. */
  readonly maxWaitMs?: number;
}

interface Stored extends FakeConsulInstance {
  readonly id: string;
  readonly datacenter: string;
  readonly namespace: string;
  readonly check: ConsulCheckStatus;
  modifyIndex: number;
}

function parseWait(value: string | null): number {
  if (!value) return 5 * 60_000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value);
  if (!m) return 5 * 60_000;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000);
}

export class FakeConsul extends HttpFake {
  /** Raft index: every write bumps it. */
  private index = 1;
  private readonly instances = new Map<string, Stored>();
  /** Keys of `instances` by service name, so a health query does not scan every instance. */
  private readonly byService = new Map<string, Set<string>>();
  /** Blocked queries: `service` undefined for the catalog (woken by any change), else woken by that service's changes. */
  private waiters = new Set<{ service?: string; wake: () => void }>();
  readonly datacenter: string;
  private readonly datacenters: Set<string>;
  /** Every request received, for assertions (method and URL). */
  readonly requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];

  constructor(private readonly options: FakeConsulOptions = {}) {
    super();
    this.datacenter = options.datacenter ?? 'dc1';
    this.datacenters = new Set([this.datacenter, ...(options.datacenters ?? [])]);
  }

  get currentIndex(): number {
    return this.index;
  }

  private key(dc: string, node: string, id: string): string {
    return `${dc}/${node}/${id}`;
  }

  /** A write: the index moves for everyone (as Consul's table index does), but only watchers of what changed wake. */
  private bump(service?: string): void {
    this.index++;
    for (const w of [...this.waiters]) {
      if (service === undefined || w.service === undefined || w.service === service) {
        this.waiters.delete(w);
        w.wake();
      }
    }
  }

  register(instance: FakeConsulInstance): void {
    const dc = instance.datacenter ?? this.datacenter;
    const id = instance.id ?? instance.service;
    const k = this.key(dc, instance.node, id);
    const previous = this.instances.get(k);
    if (previous && previous.service !== instance.service) this.byService.get(previous.service)?.delete(k);
    this.instances.set(k, {
      ...instance,
      id,
      datacenter: dc,
      namespace: instance.namespace ?? 'default',
      check: instance.check ?? 'passing',
      modifyIndex: this.index + 1,
    });
    const keys = this.byService.get(instance.service) ?? new Set<string>();
    keys.add(k);
    this.byService.set(instance.service, keys);
    this.bump(instance.service);
  }

  deregister(node: string, id: string, datacenter = this.datacenter): boolean {
    const k = this.key(datacenter, node, id);
    const s = this.instances.get(k);
    if (!s) return false;
    this.instances.delete(k);
    this.byService.get(s.service)?.delete(k);
    if (this.byService.get(s.service)?.size === 0) this.byService.delete(s.service);
    this.bump(s.service);
    return true;
  }

  setCheck(node: string, id: string, status: ConsulCheckStatus, datacenter = this.datacenter): void {
    const k = this.key(datacenter, node, id);
    const s = this.instances.get(k);
    if (!s) throw new Error(`no instance ${k}`);
    this.instances.set(k, { ...s, check: status, modifyIndex: this.index + 1 });
    this.bump(s.service);
  }

  /** Moves the index backwards (as after a snapshot restore), to exercise the client's reset rule. */
  resetIndex(to: number): void {
    this.index = to - 1;
    this.bump();
  }

  private healthEntry(s: Stored): unknown {
    return {
      Node: {
        ID: `node-${s.node}`,
        Node: s.node,
        Address: s.nodeAddress ?? '127.0.0.1',
        Datacenter: s.datacenter,
        TaggedAddresses: { lan: s.nodeAddress ?? '127.0.0.1', wan: s.nodeAddress ?? '127.0.0.1' },
        Meta: s.nodeMeta ?? {},
        CreateIndex: s.modifyIndex,
        ModifyIndex: s.modifyIndex,
      },
      Service: {
        ID: s.id,
        Service: s.service,
        Tags: s.tags ?? [],
        Address: s.address ?? '',
        TaggedAddresses: s.address ? { lan_ipv4: { Address: s.address, Port: s.port } } : {},
        Meta: s.meta ?? {},
        Port: s.port,
        Weights: s.weights ?? { Passing: 1, Warning: 1 },
        EnableTagOverride: false,
        Namespace: s.namespace,
        CreateIndex: s.modifyIndex,
        ModifyIndex: s.modifyIndex,
      },
      Checks: [
        { Node: s.node, CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', ServiceID: '', ServiceName: '', Namespace: s.namespace },
        { Node: s.node, CheckID: `service:${s.id}`, Name: `Service '${s.service}' check`, Status: s.check, ServiceID: s.id, ServiceName: s.service, Namespace: s.namespace },
      ],
    };
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://consul');
    this.requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
    const q = url.searchParams;
    if (this.options.token !== undefined) {
      const token = (req.headers['x-consul-token'] as string | undefined) ?? q.get('token') ?? bearer(req.headers.authorization);
      if (token !== this.options.token) {
        res.writeHead(403, { 'content-type': 'text/plain' });
        res.end('ACL not found');
        return;
      }
    }
    const dc = q.get('dc') || this.datacenter;
    if (!this.datacenters.has(dc)) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('No path to datacenter');
      return;
    }
    const ns = q.get('ns') ?? (req.headers['x-consul-namespace'] as string | undefined) ?? 'default';

    if (req.method === 'PUT' && url.pathname === '/v1/catalog/register') return this.catalogRegister(res, body, dc);
    if (req.method === 'PUT' && url.pathname === '/v1/catalog/deregister') {
      const b = JSON.parse(body || '{}') as { Node?: string; ServiceID?: string; Datacenter?: string };
      if (b.Node && b.ServiceID) this.deregister(b.Node, b.ServiceID, b.Datacenter ?? dc);
      return sendJson(res, 200, true);
    }
    if (req.method !== 'GET') {
      res.writeHead(405);
      res.end();
      return;
    }

    const health = /^\/v1\/health\/service\/([^/]+)$/.exec(url.pathname);
    if (url.pathname !== '/v1/catalog/services' && !health) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('404 page not found');
      return;
    }
    await this.block(q, health ? decodeURIComponent(health[1]) : undefined);
    if (res.destroyed) return;
    const inScope = (s: Stored): boolean => s.datacenter === dc && s.namespace === ns;
    const headers = { 'x-consul-index': String(this.index), 'x-consul-knownleader': 'true', 'x-consul-lastcontact': '0' };
    if (!health) {
      const out: Record<string, string[]> = { consul: [] };
      for (const [service, keys] of this.byService) {
        const tags = new Set<string>();
        let found = false;
        for (const k of keys) {
          const st = this.instances.get(k)!;
          if (!inScope(st)) continue;
          found = true;
          for (const t of st.tags ?? []) tags.add(t);
        }
        if (found) out[service] = [...tags];
      }
      return sendJson(res, 200, out, headers);
    }
    const name = decodeURIComponent(health[1]);
    const passing = q.has('passing') && q.get('passing') !== 'false';
    const tag = q.get('tag');
    const out = [...(this.byService.get(name) ?? [])]
      .map((k) => this.instances.get(k)!)
      .filter(inScope)
      .filter((s) => !passing || s.check === 'passing')
      .filter((s) => !tag || (s.tags ?? []).includes(tag))
      .sort((a, b) => a.node.localeCompare(b.node) || a.id.localeCompare(b.id))
      .map((s) => this.healthEntry(s));
    sendJson(res, 200, out, headers);
  }

  /** Holds a blocking query until the index moves past `?index=`, the wait expires, or the fake stops. */
  private async block(q: URLSearchParams, service: string | undefined): Promise<void> {
    const index = Number(q.get('index') ?? '0');
    if (!(index > 0) || index < this.index) return;
    const cap = this.options.maxWaitMs ?? 10 * 60_000;
    const wait = Math.min(parseWait(q.get('wait')), cap);
    const jittered = wait + Math.random() * (wait / 16);
    const changed = new AbortController();
    const waiter = { service, wake: (): void => changed.abort() };
    this.waiters.add(waiter);
    await delay(jittered, changed.signal, this.outage.signal);
    this.waiters.delete(waiter);
  }

  private catalogRegister(res: http.ServerResponse, body: string, dc: string): void {
    const b = JSON.parse(body || '{}') as {
      Node: string;
      Address?: string;
      Datacenter?: string;
      NodeMeta?: Record<string, string>;
      Service?: { ID?: string; Service: string; Tags?: string[]; Address?: string; Port: number; Meta?: Record<string, string>; Weights?: { Passing: number; Warning: number }; Namespace?: string };
      Check?: { Status?: ConsulCheckStatus };
    };
    if (b.Service) {
      this.register({
        node: b.Node,
        nodeAddress: b.Address,
        nodeMeta: b.NodeMeta,
        datacenter: b.Datacenter ?? dc,
        id: b.Service.ID ?? b.Service.Service,
        service: b.Service.Service,
        address: b.Service.Address,
        port: b.Service.Port,
        tags: b.Service.Tags,
        meta: b.Service.Meta,
        weights: b.Service.Weights,
        namespace: b.Service.Namespace,
        check: b.Check?.Status ?? 'passing',
      });
    }
    sendJson(res, 200, true);
  }
}

function bearer(h: string | undefined): string | undefined {
  return h?.startsWith('Bearer ') ? h.slice(7) : undefined;
}
