/**
 * tcp_proxy: one upstream connection per downstream connection (TLS when the cluster says so), bytes piped both
 * ways, half-close honoured, and one open and one close event with byte counts for `istio_tcp_*`.
 */
import type { Socket } from 'node:net';
import type { TcpProxy } from '@trellis/api';
import type { ClusterManager } from '../cluster/cluster-manager.js';
import { type Host, hostKey } from '../lb/hosts.js';
import { tcpChannel } from '../telemetry/events.js';
import { remoteAddressOf, tcpAccessLogFacts } from '../telemetry/tcp-facts.js';
import { bindAddressFor, connectUpstream } from '../upstream/connect.js';
import type { TlsContexts } from '../tls/contexts.js';

export interface TcpConnectionFacts {
  readonly instance: string;
  readonly direction: 'inbound' | 'outbound';
  readonly destIp: string;
  readonly destPort: number;
  readonly peerPrincipal: string | null;
}

export function proxyTcp(down: Socket, filter: TcpProxy, facts: TcpConnectionFacts, clusters: ClusterManager, tlsContexts: TlsContexts, now: () => number, random = Math.random): void {
  let name = filter.cluster ?? '';
  if (filter.weightedClusters) {
    const total = filter.weightedClusters.reduce((s, c) => s + c.weight, 0);
    let r = random() * total;
    name = filter.weightedClusters[filter.weightedClusters.length - 1].name;
    for (const c of filter.weightedClusters) { r -= c.weight; if (r < 0) { name = c.name; break; } }
  }
  const rt = clusters.get(name);
  const reporter = facts.direction === 'outbound' ? 'source' : 'destination';
  // Access log facts (telemetry/tcp-facts.ts): filled in as the connection proceeds.
  const log = { startMs: Date.now(), downstreamRemote: remoteAddressOf(down), upstreamHost: null as string | null, upstreamLocal: null as string | null, failure: null as string | null };
  const event = (kind: 'open' | 'close', sent: number, received: number, flags: string, upstreamPrincipal: string | null) => {
    if (tcpChannel.hasSubscribers) tcpChannel.publish({ instance: facts.instance, kind, reporter, cluster: name, sentBytes: sent, receivedBytes: received, sourcePrincipal: facts.peerPrincipal, destinationPrincipal: upstreamPrincipal, mtls: facts.direction === 'inbound' ? facts.peerPrincipal !== null : upstreamPrincipal !== null, responseFlags: flags, ...(kind === 'close' ? { detail: tcpAccessLogFacts({ filter, cluster: name, down, destIp: facts.destIp, destPort: facts.destPort, peerPrincipal: facts.peerPrincipal, upstreamPrincipal, sent, received, flags, ...log }) } : {}) });
  };
  if (!rt || rt.config.name === 'BlackHoleCluster') {
    event('open', 0, 0, rt ? 'UH' : 'NC', null);
    event('close', 0, 0, rt ? 'UH' : 'NC', null);
    down.destroy();
    return;
  }
  const host = rt.config.type === 'ORIGINAL_DST' ? { address: { address: facts.destIp, port: facts.destPort }, key: hostKey({ address: facts.destIp, port: facts.destPort }), metadata: {} } : rt.hosts.pick({ hash: null, now: now() });
  if (!host) {
    event('open', 0, 0, 'UH', null);
    event('close', 0, 0, 'UH', null);
    down.destroy();
    return;
  }
  log.upstreamHost = host.key;
  const t = rt.config.type === 'ORIGINAL_DST' ? null : rt.tlsFor(host as Parameters<typeof rt.tlsFor>[0]);
  const ctx = t ? tlsContexts.get(t) : null;
  if (t && !ctx) { down.destroy(); return; }
  const upstreamPrincipal = t ? (t.matchSubjectAltNames.find((m) => m.type === 'URI')?.match.value ?? 'unknown') : null;
  rt.stats.rqTotal += 1;
  rt.stats.rqActive += 1;
  event('open', 0, 0, '-', upstreamPrincipal);
  down.pause();
  let closed = false;
  const close = (flags: string) => {
    if (closed) return;
    closed = true;
    rt.stats.rqActive -= 1;
    event('close', up?.bytesWritten ?? 0, up?.bytesRead ?? 0, flags, upstreamPrincipal);
    down.destroy();
    up?.destroy();
  };
  down.on('error', () => close('DC'));
  let up: Socket | null = null;
  up = connectUpstream(host.address.address, host.address.port, rt.config.connectTimeoutMs, t && ctx ? { config: t, ctx: ctx.ctx, alpn: t.alpn } : null, (err, s) => {
    // Outlier detection sees connect results (not ORIGINAL_DST's ad-hoc hosts, which belong to no host set).
    const pooled = rt.config.type === 'ORIGINAL_DST' ? null : host as Host;
    if (err || !s) { rt.stats.cxConnectFail += 1; if (pooled) rt.recordResult(pooled, { kind: 'connect_failure' }, now()); log.failure = err?.message ?? 'connection failure'; close('UF'); return; }
    log.upstreamLocal = s.localAddress ? `${s.localAddress}:${s.localPort}` : null;
    if (pooled) rt.recordResult(pooled, { kind: 'connect_success' }, now());
    s.pipe(down);
    down.pipe(s);
    down.resume();
    // Half-close is forwarded by pipe (end → end); the connection is done when both sides have closed.
    let closedSides = 0;
    const sideClosed = () => { if (++closedSides === 2) close('-'); };
    s.once('close', sideClosed);
    down.once('close', sideClosed);
    s.on('error', () => close('UC'));
  }, bindAddressFor(host.address.address, rt.config.bindAddresses));
  up.on('error', () => {});
}
