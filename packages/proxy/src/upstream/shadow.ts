/**
 * Shadow (mirror) requests, fire-and-forget: a copy of a request goes to a host of the mirror cluster over that
 * cluster's own pools (TLS, HTTP/2 as configured), its response is drained and discarded, and nothing that happens
 * to it (refused connection, reset, timeout, slow body) reaches the caller.
 *
 * Memory stays bounded: each cluster has at most `maxInflightPerCluster` shadows in flight (a slot is taken when
 * the copy is decided, before its body is buffered, and given back when the shadow ends), a body is buffered up to
 * `maxBodyBytes` (a larger one cancels its shadow, as Envoy's shadow buffer limit does), and every shadow has a
 * timeout. A shadow that cannot be sent is dropped and counted; the caller never waits for a slot.
 *
 * Outcomes are published on the `trellis:proxy:mirror` diagnostics channel (metrics may subscribe).
 */
import diagnostics_channel from 'node:diagnostics_channel';
import http2 from 'node:http2';
import type { Dispatcher } from 'undici';
import type { ClusterManager, ClusterRuntime } from '../cluster/cluster-manager.js';

export interface ShadowOptions {
  readonly now: () => number;
  /** Shadows in flight per mirror cluster (default 64); more are dropped (`overflow`). */
  readonly maxInflightPerCluster?: number;
  /** Largest request body copied (default 1 MiB); a larger body cancels the shadow (`body_too_large`). */
  readonly maxBodyBytes?: number;
  /** Upper bound of a shadow's life when the route has no (or a longer) timeout (default 30 s). */
  readonly maxTimeoutMs?: number;
  /** Aborted when the proxy closes: shadows in flight are cancelled and no new ones are sent. */
  readonly signal?: AbortSignal;
}

export type ShadowOutcome = 'response' | 'overflow' | 'no_cluster' | 'no_host' | 'no_secret' | 'body_too_large' | 'body_lost' | 'error' | 'timeout';

export interface ShadowEvent {
  readonly cluster: string;
  readonly outcome: ShadowOutcome;
  /** The mirror's status for `response`, else 0. */
  readonly status: number;
}

export const shadowChannel = diagnostics_channel.channel('trellis:proxy:mirror');

export interface ShadowCounts {
  sent: number;
  responses: number;
  dropped: number;
  failed: number;
  inflight: number;
}

/** The request as it is copied: headers after the route's header operations, path after rewrites. */
export interface ShadowRequest {
  readonly method: string;
  readonly path: string;
  /** The primary's authority; the shadow gets `-shadow` appended to the host part unless `keepAuthority`. */
  readonly authority: string;
  readonly keepAuthority?: boolean;
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** The downstream speaks HTTP/2 (for clusters with `use_downstream_protocol`). */
  readonly downstreamH2: boolean;
  /** The route's timeout (0 = none). */
  readonly timeoutMs: number;
}

/** A taken slot: `send` the copy once its body is complete, or `cancel` it. Exactly one of them, once. */
export interface ShadowTicket {
  readonly maxBodyBytes: number;
  send(body: Buffer | null): void;
  cancel(outcome: ShadowOutcome): void;
}

/** Envoy's shadow authority: `host` → `host-shadow`, `host:port` → `host-shadow:port` (`[v6]:port` likewise). */
export function shadowAuthority(authority: string): string {
  const i = authority.lastIndexOf(':');
  if (i > 0 && !authority.endsWith(']') && /^\d+$/.test(authority.slice(i + 1)) && (authority.indexOf(':') === i || authority.startsWith('['))) {
    return `${authority.slice(0, i)}-shadow${authority.slice(i)}`;
  }
  return `${authority}-shadow`;
}

export class ShadowSender {
  private readonly maxInflight: number;
  private readonly maxBody: number;
  private readonly maxTimeout: number;
  /** Per cluster runtime (a CDS update makes a new one and the old one's shadows finish on the old pools). */
  private readonly inflight = new WeakMap<ClusterRuntime, number>();
  private readonly counts = new Map<string, ShadowCounts>();
  /** Cancels of the shadows in flight (for close). */
  private readonly live = new Set<() => void>();

  constructor(private readonly clusters: ClusterManager, private readonly o: ShadowOptions) {
    this.maxInflight = o.maxInflightPerCluster ?? 64;
    this.maxBody = o.maxBodyBytes ?? 1 << 20;
    this.maxTimeout = o.maxTimeoutMs ?? 30_000;
    o.signal?.addEventListener('abort', () => { for (const cancel of [...this.live]) cancel(); }, { once: true });
  }

  /** Counters per mirror cluster (admin/debug and tests). */
  stats(cluster: string): Readonly<ShadowCounts> {
    return this.counts.get(cluster) ?? { sent: 0, responses: 0, dropped: 0, failed: 0, inflight: 0 };
  }

  /**
   * Takes a slot for a shadow of `req` to `cluster`, or returns null (and counts the drop) when the cluster is
   * unknown or at its limit. The caller then supplies the body (or cancels).
   */
  reserve(cluster: string, req: ShadowRequest): ShadowTicket | null {
    if (this.o.signal?.aborted) return null;
    const rt = this.clusters.get(cluster);
    if (!rt || rt.config.type === 'ORIGINAL_DST') { this.drop(cluster, 'no_cluster'); return null; }
    const n = this.inflight.get(rt) ?? 0;
    if (n >= this.maxInflight || rt.stats.rqActive >= rt.config.circuitBreakers.maxRequests) {
      rt.stats.overflow += 1;
      this.drop(cluster, 'overflow');
      return null;
    }
    this.inflight.set(rt, n + 1);
    this.count(cluster).inflight += 1;
    let done = false;
    const release = () => {
      this.inflight.set(rt, (this.inflight.get(rt) ?? 1) - 1);
      this.count(cluster).inflight -= 1;
    };
    return {
      maxBodyBytes: this.maxBody,
      send: (body) => {
        if (done) return;
        done = true;
        if (this.o.signal?.aborted) { release(); return; }
        this.dispatch(cluster, rt, req, body, release);
      },
      cancel: (outcome) => {
        if (done) return;
        done = true;
        release();
        this.drop(cluster, outcome);
      },
    };
  }

  private count(cluster: string): ShadowCounts {
    let c = this.counts.get(cluster);
    if (!c) { c = { sent: 0, responses: 0, dropped: 0, failed: 0, inflight: 0 }; this.counts.set(cluster, c); }
    return c;
  }

  private drop(cluster: string, outcome: ShadowOutcome): void {
    this.count(cluster).dropped += 1;
    if (shadowChannel.hasSubscribers) shadowChannel.publish({ cluster, outcome, status: 0 } satisfies ShadowEvent);
  }

  private dispatch(cluster: string, rt: ClusterRuntime, req: ShadowRequest, body: Buffer | null, release: () => void): void {
    const host = rt.hosts.pick({ hash: null, now: this.o.now() });
    if (!host) { release(); this.drop(cluster, 'no_host'); return; }
    const h2 = rt.config.http2 || (rt.config.useDownstreamProtocol && req.downstreamH2);
    const u = rt.upstream(host, h2);
    if (u === 'no_secret') { release(); this.drop(cluster, 'no_secret'); return; }
    const c = this.count(cluster);
    c.sent += 1;
    rt.stats.rqTotal += 1;
    rt.stats.rqActive += 1;
    host.active += 1;
    let settled = false;
    const timeoutMs = req.timeoutMs > 0 ? Math.min(req.timeoutMs, this.maxTimeout) : this.maxTimeout;
    let abort: () => void = () => {};
    const cancel = () => { finish('error', 0); abort(); };
    this.live.add(cancel);
    const finish = (outcome: ShadowOutcome, status: number) => {
      if (settled) return;
      settled = true;
      this.live.delete(cancel);
      clearTimeout(timer);
      rt.stats.rqActive -= 1;
      host.active -= 1;
      host.total += 1;
      release();
      if (outcome === 'response') c.responses += 1;
      else { c.failed += 1; rt.stats.rqError += 1; if (outcome === 'timeout') rt.stats.rqTimeout += 1; }
      if (shadowChannel.hasSubscribers) shadowChannel.publish({ cluster, outcome, status } satisfies ShadowEvent);
    };
    // Settle first: aborting may report an error synchronously.
    const timer = setTimeout(() => { finish('timeout', 0); abort(); }, timeoutMs);
    timer.unref?.();
    const authority = req.keepAuthority ? req.authority : shadowAuthority(req.authority);
    const headers: Record<string, string | string[]> = { ...req.headers };
    delete headers['content-length'];
    // undici refuses `expect` (and the copy is sent whole anyway).
    delete headers.expect;
    try {
      if (u.kind === 'h1') abort = viaH1(u.pool, req, authority, headers, body, finish);
      else abort = viaH2(u.h2.get(), rt.tlsFor(host) !== null, req, authority, headers, body, finish);
    } catch {
      finish('error', 0);
    }
  }
}

type Finish = (outcome: ShadowOutcome, status: number) => void;

function viaH1(pool: Dispatcher, req: ShadowRequest, authority: string, headers: Record<string, string | string[]>, body: Buffer | null, finish: Finish): () => void {
  let controller: Dispatcher.DispatchController | null = null;
  let aborted = false;
  let status = 0;
  headers.host = authority;
  pool.dispatch({ path: req.path, method: req.method, headers, body, headersTimeout: 0, bodyTimeout: 0 }, {
    onRequestStart(c) { controller = c; if (aborted) c.abort(new Error('shadow timeout')); },
    onResponseStart(_c, s) { if (s >= 200) status = s; },
    onResponseData() { /* discarded */ },
    onResponseEnd() { finish('response', status); },
    onResponseError() { finish('error', 0); },
  });
  return () => { aborted = true; controller?.abort(new Error('shadow timeout')); };
}

function viaH2(session: http2.ClientHttp2Session, tls: boolean, req: ShadowRequest, authority: string, headers: Record<string, string | string[]>, body: Buffer | null, finish: Finish): () => void {
  const stream = session.request({ ...headers, ':method': req.method, ':path': req.path, ':authority': authority, ':scheme': tls ? 'https' : 'http' }, { endStream: body === null });
  let status = 0;
  stream.on('response', (h) => { const s = Number(h[':status']); if (s >= 200) status = s; });
  stream.on('data', () => { /* discarded */ });
  stream.on('error', () => finish('error', 0));
  stream.on('close', () => finish(status > 0 && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? 'response' : 'error', status));
  if (body !== null) stream.end(body);
  return () => { if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL); };
}
