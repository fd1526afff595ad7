/**
 * Listeners from LDS bound to sockets: the outbound capture listener (`virtualOutbound`, 15001), the inbound one
 * (`virtualInbound`, 15006), and explicit listeners (gateways, hosts without capture). Per connection:
 * original destination (SO_ORIGINAL_DST through the native addon) → hand-off to the `bind_to_port: false`
 * listener for that destination (Envoy's use_original_dst) → protocol detection when a chain needs it → filter
 * chain → TLS termination when the chain has a DownstreamTlsContext → HCM (HTTP/1.1 or HTTP/2) or tcp_proxy.
 * A connection no chain matches is closed (this is how STRICT refuses plaintext).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { FilterChain, ListenerConfig } from '@trellis/api';
import type { ClusterManager } from '../cluster/cluster-manager.js';
import type { ConfigStore } from '../config/store.js';
import type { HttpServers } from '../http/http-servers.js';
import type { Logger } from '../log.js';
import { type Detected, detect, peek } from '../net/detect.js';
import { normalizeIp } from '../net/cidr.js';
import { selectFilterChain } from '../net/filter-chain.js';
import { connectionDenied } from '../authz/network.js';
import { proxyTcp } from '../tcp/tcp-proxy.js';
import type { TlsContexts } from '../tls/contexts.js';
import { spiffeIdOf, verifyPeerSans } from '../tls/peer-identity.js';

export interface ListenerManagerOptions {
  readonly store: ConfigStore;
  readonly clusters: ClusterManager;
  readonly tlsContexts: TlsContexts;
  readonly http: HttpServers;
  readonly logger: Logger;
  /** Reads SO_ORIGINAL_DST; null when the connection was not redirected. */
  readonly originalDst: (socket: net.Socket) => { address: string; port: number } | null;
  /** Port overrides by listener name (`virtualOutbound`, `virtualInbound`); 0 = OS-chosen. */
  readonly portOverrides: Readonly<Record<string, number>>;
  /** Bind address override for every listener (tests: 127.0.0.1). */
  readonly bindAddress?: string;
  readonly detectionTimeoutMs: number;
  /** Instance id stamped on connection facts and telemetry events. */
  readonly instance: string;
  readonly now: () => number;
}

interface Bound {
  config: ListenerConfig;
  readonly server: net.Server;
  readonly key: string;
  port: number;
  readonly sockets: Set<net.Socket>;
}

export class ListenerManager {
  private readonly bound = new Map<string, Bound>();
  private readonly unsubscribe: () => void;
  private draining = false;
  private pending: Promise<void> = Promise.resolve();

  constructor(private readonly o: ListenerManagerOptions) {
    this.unsubscribe = o.store.onChange((k) => { if (k === 'listener') this.sync(); });
  }

  /** Binds/updates/unbinds to match the store; resolves when done. */
  sync(): Promise<void> {
    this.pending = this.pending.then(() => this.doSync()).catch((err: Error) => this.o.logger.error('listener sync failed', { error: err.message }));
    return this.pending;
  }

  /** Bound port of a listener by name (after `sync()` resolved). */
  port(name: string): number | undefined {
    return this.bound.get(name)?.port;
  }

  ports(): Record<string, number> {
    return Object.fromEntries([...this.bound].map(([n, b]) => [n, b.port]));
  }

  private async doSync(): Promise<void> {
    if (this.draining) return;
    const wanted = new Map<string, ListenerConfig>();
    for (const l of this.o.store.listeners().values()) if (l.bindToPort && l.address) wanted.set(l.name, l);
    for (const [name, b] of this.bound) {
      const l = wanted.get(name);
      if (!l || this.keyOf(l) !== b.key) { this.bound.delete(name); b.server.close(); }
    }
    for (const [name, l] of wanted) {
      const b = this.bound.get(name);
      if (b) { b.config = l; continue; }
      const key = this.keyOf(l);
      const server = net.createServer({ noDelay: true, pauseOnConnect: true, allowHalfOpen: true });
      const entry: Bound = { config: l, server, key, port: 0, sockets: new Set() };
      server.on('connection', (s) => {
        entry.sockets.add(s);
        s.once('close', () => entry.sockets.delete(s));
        this.onConnection(entry.config, s).catch(() => s.destroy());
      });
      const [host, port] = key.split('|');
      // '::' is dual-stack unless another listener takes 0.0.0.0 on the same port (IPv4 and IPv6 capture listeners).
      const ipv6Only = host === '::' && [...wanted.values()].some((o) => o !== l && this.keyOf(o) === `0.0.0.0|${port}`);
      try {
        await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen({ host, port: Number(port), ipv6Only }, () => { server.off('error', reject); resolve(); }); });
      } catch (err) {
        this.o.logger.error('cannot bind listener', { listener: name, address: `${host}:${port}`, error: (err as Error).message });
        continue;
      }
      entry.port = (server.address() as net.AddressInfo).port;
      this.bound.set(name, entry);
      this.o.logger.info('listener bound', { listener: name, address: `${host}:${entry.port}` });
    }
  }

  private keyOf(l: ListenerConfig): string {
    const port = this.o.portOverrides[l.name] ?? l.address!.port;
    return `${this.o.bindAddress ?? l.address!.address}|${port}`;
  }

  private async onConnection(accepted: ListenerConfig, socket: net.Socket): Promise<void> {
    socket.on('error', () => socket.destroy());
    let destIp = normalizeIp(socket.localAddress ?? '');
    let destPort = socket.localPort ?? 0;
    const sourceIp = normalizeIp(socket.remoteAddress ?? '');
    let l = accepted;
    if (accepted.useOriginalDst || accepted.listenerFilters.includes('original_dst')) {
      const od = this.o.originalDst(socket);
      if (od) { destIp = normalizeIp(od.address); destPort = od.port; }
      if (accepted.useOriginalDst) l = this.virtualListenerFor(destIp, destPort) ?? accepted;
    }
    let detected: Detected = { transportProtocol: 'raw_buffer', serverName: null, applicationProtocols: [] };
    if (needsInspection(l)) {
      socket.resume();
      const first = await peek(socket, this.o.detectionTimeoutMs);
      detected = detect(first);
    }
    const chain = selectFilterChain(l, { destIp, destPort, ...detected });
    if (!chain) { socket.destroy(); return; }
    const direction = l.trafficDirection === 'INBOUND' || accepted.trafficDirection === 'INBOUND' ? 'inbound' : 'outbound';
    if (chain.tls) {
      if (detected.transportProtocol !== 'tls' && needsInspection(l)) { socket.destroy(); return; }
      this.terminateTls(l, chain, socket, { direction, sourceIp, destIp, destPort, detected });
      return;
    }
    this.dispatch(l, chain, socket, { direction, sourceIp, destIp, destPort, detected, peer: null, tls: false, alpn: null });
  }

  private terminateTls(l: ListenerConfig, chain: FilterChain, socket: net.Socket, f: { direction: 'inbound' | 'outbound'; sourceIp: string; destIp: string; destPort: number; detected: Detected }): void {
    const t = chain.tls!;
    const c = this.o.tlsContexts.get(t);
    if (!c) { socket.destroy(); return; }
    const httpAlpn = chain.terminal.kind === 'http' ? ['h2', 'http/1.1'] : [];
    const alpn = [...new Set([...httpAlpn, ...t.alpn.filter((a) => chain.terminal.kind === 'http' || a !== 'h2')])];
    const ts = new tls.TLSSocket(socket, {
      isServer: true, secureContext: c.ctx, requestCert: t.requireClientCertificate || t.validationSds !== null,
      rejectUnauthorized: t.requireClientCertificate, ALPNProtocols: alpn.length ? alpn : undefined,
    });
    ts.on('error', () => { ts.destroy(); socket.destroy(); });
    ts.once('secure', () => {
      const cert = ts.getPeerCertificate();
      const peer = spiffeIdOf(cert);
      // Node checks a client certificate against the CA only for sockets of a tls.Server; one made by hand must
      // refuse a presented certificate that does not verify itself (Envoy: validation context → verify or reset).
      const verifyError = (ts as unknown as { _handle?: { verifyError?: () => Error | null } })._handle?.verifyError?.() ?? null;
      if (verifyError && (t.requireClientCertificate || (cert && Object.keys(cert).length > 0))) { ts.destroy(); return; }
      if (t.matchSubjectAltNames.length && (!cert || verifyPeerSans(t, cert))) { ts.destroy(); return; }
      // A server-side TLSSocket made by hand keeps `secureConnecting` true after 'secure'; the HTTP/2 session
      // would then wait for a 'secureConnect' that never comes.
      (ts as tls.TLSSocket & { secureConnecting?: boolean }).secureConnecting = false;
      this.dispatch(l, chain, ts, { ...f, peer, tls: true, alpn: ts.alpnProtocol || null });
    });
    socket.resume();
  }

  private dispatch(l: ListenerConfig, chain: FilterChain, socket: net.Socket, f: { direction: 'inbound' | 'outbound'; sourceIp: string; destIp: string; destPort: number; detected: Detected; peer: string | null; tls: boolean; alpn: string | null }): void {
    const term = chain.terminal;
    if (connectionDenied(chain, { instance: this.o.instance, direction: f.direction, sourceIp: f.sourceIp, destIp: f.destIp, destPort: f.destPort, peer: f.peer, serverName: f.detected.serverName })) { socket.destroy(); return; }
    if (term.kind === 'tcp') {
      proxyTcp(socket, term, { instance: this.o.instance, direction: f.direction, destIp: f.destIp, destPort: f.destPort, peerPrincipal: f.peer }, this.o.clusters, this.o.tlsContexts, this.o.now);
      return;
    }
    const h2 = f.tls ? f.alpn === 'h2' : f.detected.applicationProtocols.includes('h2c') || term.codecType === 'HTTP2';
    this.o.http.accept(socket, { instance: this.o.instance, direction: f.direction, listener: l.name, hcm: term, sourceIp: f.sourceIp, destIp: f.destIp, destPort: f.destPort, peerPrincipal: f.peer, tls: f.tls, serverName: f.detected.serverName }, h2);
    socket.resume();
  }

  /** The `bind_to_port: false` listener whose address is the destination (exact IP first, then 0.0.0.0/::). */
  private virtualListenerFor(ip: string, port: number): ListenerConfig | null {
    let wildcard: ListenerConfig | null = null;
    for (const l of this.o.store.listeners().values()) {
      if (l.bindToPort || !l.address || l.address.port !== port) continue;
      if (l.address.address === ip) return l;
      if (l.address.address === '0.0.0.0' || l.address.address === '::') wildcard ??= l;
    }
    return wildcard;
  }

  /** Stops accepting (closes listening sockets); open connections finish. */
  drain(): void {
    this.draining = true;
    for (const b of this.bound.values()) b.server.close();
  }

  close(): void {
    this.unsubscribe();
    this.drain();
    for (const b of this.bound.values()) for (const s of b.sockets) s.destroy();
    this.bound.clear();
  }

  /** Open downstream connections across listeners. */
  get connectionCount(): number {
    let n = 0;
    for (const b of this.bound.values()) n += b.sockets.size;
    return n;
  }
}

/** Whether the first bytes must be read before a chain can be chosen (TLS vs plaintext, h1 vs h2c, SNI, ALPN). */
function needsInspection(l: ListenerConfig): boolean {
  if (l.listenerFilters.includes('tls_inspector') || l.listenerFilters.includes('http_inspector')) return true;
  return [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])].some((fc) =>
    fc.terminal.kind === 'http' || fc.tls !== null || fc.match.transportProtocol !== null || fc.match.applicationProtocols.length > 0 || fc.match.serverNames.length > 0);
}
