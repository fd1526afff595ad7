/** `envoy.config.listener.v3.Listener` → ListenerConfig. */
import { EXT_TYPE_URL } from '../type-urls.js';
import { type AccessLogConfig, type TracingConfig, decodeAccessLogs, decodeTracing } from './access-log.js';
import { HTTP_FILTER_DECODERS, NETWORK_FILTER_DECODERS, decodeFilterConfig } from './filter-configs.js';
import { type DownstreamTls, type SocketAddress, decodeAddress, decodeTransportSocket } from './common.js';
import { type Obj, deepFreeze, fail, join, list, num, obj, reqObj, reqStr, str, strs, wrapped, wrappedBool } from './read.js';
import { type RouteConfig, decodeRouteConfig } from './route.js';

export interface CidrRange {
  readonly address: string;
  readonly prefixLen: number;
}

export interface FilterChainMatch {
  readonly destinationPort: number | null;
  readonly prefixRanges: readonly CidrRange[];
  readonly serverNames: readonly string[];
  /** 'tls' | 'raw_buffer' | null (any). */
  readonly transportProtocol: string | null;
  readonly applicationProtocols: readonly string[];
}

export interface HttpFilterRef {
  readonly name: string;
  readonly type: string | null;
  /** Decoded `typed_config` (see filter-configs.ts), or null when Trellis has no decoder for the type. */
  readonly config: unknown;
}

export interface HttpConnectionManager {
  readonly kind: 'http';
  readonly statPrefix: string;
  /** Name of the RDS RouteConfiguration, or null when `routeConfig` is inline. */
  readonly rds: string | null;
  readonly routeConfig: RouteConfig | null;
  readonly httpFilters: readonly HttpFilterRef[];
  readonly codecType: 'AUTO' | 'HTTP1' | 'HTTP2';
  readonly streamIdleTimeoutMs: number | null;
  /** `normalize_path`: RFC 3986 normalisation of the path before routing and filters. */
  readonly normalizePath: boolean;
  /** `merge_slashes`: `//` runs become one `/` before routing and filters. */
  readonly mergeSlashes: boolean;
  /** `use_remote_address`: the connection's peer is the client (edge proxies); x-forwarded-for is appended. */
  readonly useRemoteAddress: boolean;
  /** `access_log`: file/stdout loggers (empty = no access log from the control plane). */
  readonly accessLog: readonly AccessLogConfig[];
  /** `tracing` (sampling and the Zipkin collector), or null. */
  readonly tracing: TracingConfig | null;
}

export interface TcpProxy {
  readonly kind: 'tcp';
  readonly statPrefix: string;
  readonly cluster: string | null;
  readonly weightedClusters: readonly { readonly name: string; readonly weight: number }[] | null;
  readonly idleTimeoutMs: number | null;
  readonly accessLog: readonly AccessLogConfig[];
}

export interface OtherNetworkFilter {
  readonly kind: 'other';
  readonly name: string;
  readonly type: string | null;
  /** Decoded `typed_config` (see filter-configs.ts), or null when Trellis has no decoder for the type. */
  readonly config: unknown;
}

export type NetworkFilter = HttpConnectionManager | TcpProxy | OtherNetworkFilter;

export interface FilterChain {
  readonly name: string;
  readonly match: FilterChainMatch;
  readonly tls: DownstreamTls | null;
  readonly filters: readonly NetworkFilter[];
  /** The terminal filter (HCM or tcp_proxy) the data path uses. */
  readonly terminal: HttpConnectionManager | TcpProxy;
}

export interface ListenerConfig {
  readonly name: string;
  readonly address: SocketAddress | null;
  readonly useOriginalDst: boolean;
  readonly bindToPort: boolean;
  readonly listenerFilters: readonly ('original_dst' | 'tls_inspector' | 'http_inspector' | string)[];
  readonly filterChains: readonly FilterChain[];
  readonly defaultFilterChain: FilterChain | null;
  readonly trafficDirection: 'INBOUND' | 'OUTBOUND' | 'UNSPECIFIED';
}

const NO_MATCH: FilterChainMatch = { destinationPort: null, prefixRanges: [], serverNames: [], transportProtocol: null, applicationProtocols: [] };

function decodeCidr(c: Obj, p: string): CidrRange {
  const address = reqStr(c, 'address_prefix', p);
  const len = wrapped(c, 'prefix_len', p) ?? (address.includes(':') ? 128 : 32);
  if (len < 0 || len > (address.includes(':') ? 128 : 32)) fail(join(p, 'prefix_len'), 'out of range');
  return { address, prefixLen: len };
}

function decodeHcm(tc: Obj, p: string): HttpConnectionManager {
  const rds = obj(tc, 'rds', p);
  const inline = obj(tc, 'route_config', p);
  let rdsName: string | null = null;
  let routeConfig: RouteConfig | null = null;
  if (rds) rdsName = reqStr(rds, 'route_config_name', join(p, 'rds'));
  else if (inline) routeConfig = decodeRouteConfig(inline, join(p, 'route_config'));
  else fail(join(p, 'rds'), 'required (or route_config)');
  const codec = tc.codec_type ?? 'AUTO';
  if (codec !== 'AUTO' && codec !== 'HTTP1' && codec !== 'HTTP2') fail(join(p, 'codec_type'), 'unsupported');
  return {
    kind: 'http',
    statPrefix: str(tc, 'stat_prefix', p) ?? '',
    rds: rdsName,
    routeConfig,
    httpFilters: list(tc, 'http_filters', p, (f, fp) => {
      const typed = obj(f, 'typed_config', fp);
      return { name: reqStr(f, 'name', fp), type: (typed?.['@type'] as string | undefined) ?? null, config: decodeFilterConfig(HTTP_FILTER_DECODERS, typed, join(fp, 'typed_config')) };
    }),
    codecType: codec,
    streamIdleTimeoutMs: null,
    normalizePath: wrappedBool(tc, 'normalize_path', p) ?? false,
    mergeSlashes: tc.merge_slashes === true,
    useRemoteAddress: wrappedBool(tc, 'use_remote_address', p) ?? false,
    accessLog: decodeAccessLogs(tc, p),
    tracing: decodeTracing(tc, p),
  };
}

function decodeTcpProxy(tc: Obj, p: string): TcpProxy {
  const cluster = str(tc, 'cluster', p) ?? null;
  const wc = obj(tc, 'weighted_clusters', p);
  const weightedClusters = wc ? list(wc, 'clusters', join(p, 'weighted_clusters'), (c, cp) => ({ name: reqStr(c, 'name', cp), weight: num(c, 'weight', cp) ?? 0 })) : null;
  if (!cluster && !weightedClusters?.length) fail(join(p, 'cluster'), 'required (or weighted_clusters)');
  return { kind: 'tcp', statPrefix: str(tc, 'stat_prefix', p) ?? '', cluster: weightedClusters?.length ? null : cluster, weightedClusters: weightedClusters?.length ? weightedClusters : null, idleTimeoutMs: null, accessLog: decodeAccessLogs(tc, p) };
}

function decodeFilterChain(fc: Obj, p: string): FilterChain {
  const m = obj(fc, 'filter_chain_match', p);
  const mp = join(p, 'filter_chain_match');
  const match: FilterChainMatch = m ? {
    destinationPort: wrapped(m, 'destination_port', mp) ?? null,
    prefixRanges: list(m, 'prefix_ranges', mp, decodeCidr),
    serverNames: strs(m, 'server_names', mp).map((s) => s.toLowerCase()),
    transportProtocol: str(m, 'transport_protocol', mp) ?? null,
    applicationProtocols: strs(m, 'application_protocols', mp),
  } : NO_MATCH;
  const filters = list(fc, 'filters', p, (f, fp): NetworkFilter => {
    const name = reqStr(f, 'name', fp);
    const tc = obj(f, 'typed_config', fp);
    const type = (tc?.['@type'] as string | undefined) ?? null;
    if (type === EXT_TYPE_URL.httpConnectionManager) return decodeHcm(tc!, join(fp, 'typed_config'));
    if (type === EXT_TYPE_URL.tcpProxy) return decodeTcpProxy(tc!, join(fp, 'typed_config'));
    if (!tc && (name === 'envoy.filters.network.http_connection_manager' || name === 'envoy.filters.network.tcp_proxy')) fail(join(fp, 'typed_config'), 'required');
    return { kind: 'other', name, type, config: decodeFilterConfig(NETWORK_FILTER_DECODERS, tc, join(fp, 'typed_config')) };
  });
  const terminal = filters.find((f): f is HttpConnectionManager | TcpProxy => f.kind !== 'other');
  if (!terminal) fail(join(p, 'filters'), 'needs an http_connection_manager or tcp_proxy filter');
  return { name: str(fc, 'name', p) ?? '', match, tls: decodeTransportSocket<DownstreamTls>(obj(fc, 'transport_socket', p), join(p, 'transport_socket'), 'downstream'), filters, terminal };
}

const LISTENER_FILTERS: Record<string, string> = {
  [EXT_TYPE_URL.originalDst]: 'original_dst',
  [EXT_TYPE_URL.tlsInspector]: 'tls_inspector',
  [EXT_TYPE_URL.httpInspector]: 'http_inspector',
  'envoy.filters.listener.original_dst': 'original_dst',
  'envoy.filters.listener.tls_inspector': 'tls_inspector',
  'envoy.filters.listener.http_inspector': 'http_inspector',
};

export function decodeListener(o: Obj): ListenerConfig {
  const name = reqStr(o, 'name', '');
  const address = o.address ? decodeAddress(reqObj(o, 'address', ''), 'address') : null;
  const filterChains = list(o, 'filter_chains', '', decodeFilterChain);
  const dfc = obj(o, 'default_filter_chain', '');
  const defaultFilterChain = dfc ? decodeFilterChain(dfc, 'default_filter_chain') : null;
  if (!filterChains.length && !defaultFilterChain) fail('filter_chains', 'must not be empty (or set default_filter_chain)');
  const listenerFilters = list(o, 'listener_filters', '', (f, p) => {
    const type = obj(f, 'typed_config', p)?.['@type'];
    const n = reqStr(f, 'name', p);
    return LISTENER_FILTERS[typeof type === 'string' ? type : ''] ?? LISTENER_FILTERS[n] ?? n;
  });
  const dir = o.traffic_direction ?? 'UNSPECIFIED';
  return deepFreeze({
    name,
    address,
    useOriginalDst: wrappedBool(o, 'use_original_dst', '') ?? false,
    bindToPort: wrappedBool(o, 'bind_to_port', '') ?? true,
    listenerFilters,
    filterChains,
    defaultFilterChain,
    trafficDirection: dir === 'INBOUND' || dir === 'OUTBOUND' ? dir : 'UNSPECIFIED',
  });
}
