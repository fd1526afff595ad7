/** `envoy.config.cluster.v3.Cluster` → ClusterConfig. */
import { isIP } from 'node:net';
import { EXT_TYPE_URL } from '../type-urls.js';
import { type UpstreamTls, decodeTransportSocket } from './common.js';
import { type ClusterLoadAssignmentConfig, decodeClusterLoadAssignment } from './endpoint.js';
import { type Obj, deepFreeze, durationMs, enumOf, fail, isObj, join, list, num, obj, reqObj, reqStr, str, wrapped } from './read.js';
import { fromStruct } from '../any.js';

export type ClusterType = 'EDS' | 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'ORIGINAL_DST';
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH' | 'MAGLEV' | 'CLUSTER_PROVIDED';

export interface CircuitBreakerThresholds {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

/** `outlier_detection`, with Envoy's defaults (success-rate and failure-percentage detection are not implemented). */
export interface OutlierDetection {
  readonly consecutive5xx: number;
  /** Percent chance an ejection by consecutive 5xx is enforced (default 100). */
  readonly enforcingConsecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  /** Default 0: gateway failures are counted but do not eject unless enforced. */
  readonly enforcingConsecutiveGatewayFailure: number;
  /** When false (default), local-origin failures (connect failure, timeout, reset) count as 503/504 responses. */
  readonly splitExternalLocalOriginErrors: boolean;
  readonly consecutiveLocalOriginFailure: number;
  readonly enforcingConsecutiveLocalOriginFailure: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  /** Cap of base ejection time × number of ejections (default 300 s). */
  readonly maxEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
}

export interface TransportSocketMatch {
  readonly name: string;
  /** Endpoint metadata under `envoy.transport_socket_match` must contain these key/values. */
  readonly match: Readonly<Record<string, unknown>>;
  readonly tls: UpstreamTls | null;
}

export interface ClusterConfig {
  readonly name: string;
  readonly type: ClusterType;
  /** EDS service name to subscribe to (defaults to the cluster name). */
  readonly edsServiceName: string;
  readonly lbPolicy: LbPolicy;
  readonly connectTimeoutMs: number;
  /** DEFAULT-priority thresholds (Envoy's defaults: 1024 each, retries 3). */
  readonly circuitBreakers: CircuitBreakerThresholds;
  readonly outlierDetection: OutlierDetection | null;
  readonly tls: UpstreamTls | null;
  readonly transportSocketMatches: readonly TransportSocketMatch[];
  /** Upstream HTTP/2 (explicit http2 in HttpProtocolOptions, or the deprecated http2_protocol_options). */
  readonly http2: boolean;
  /** When true the upstream protocol follows the downstream one. */
  readonly useDownstreamProtocol: boolean;
  readonly loadAssignment: ClusterLoadAssignmentConfig | null;
  readonly ringHash: { readonly minimumRingSize: number } | null;
  /**
   * `upstream_bind_config`: local source addresses for upstream connections, at most one per family (the source
   * address plus `extra_source_addresses`). Inbound clusters use 127.0.0.6 / ::6 so capture rules can tell the
   * proxy's inbound passthrough from its own outbound calls (docs/capture.md).
   */
  readonly bindAddresses: { readonly v4: string | null; readonly v6: string | null };
  /**
   * `common_lb_config.healthy_panic_threshold` (percent, default 50): when fewer hosts than this are available
   * (healthy and not ejected), the balancer ignores health and uses them all; 0 disables panic (Istio sets
   * DestinationRule `outlierDetection.minHealthPercent`, default 0).
   */
  readonly healthyPanicThreshold: number;
  /** HttpProtocolOptions `common_http_protocol_options` (null = Envoy's defaults: unlimited, 1 h idle). */
  readonly maxRequestsPerConnection: number | null;
  readonly idleTimeoutMs: number | null;
}

const TYPES: readonly ClusterType[] = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'];
const POLICIES: readonly LbPolicy[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV', 'CLUSTER_PROVIDED'];

function percent(o: Obj, key: string, path: string, dflt: number): number {
  const v = wrapped(o, key, path) ?? dflt;
  if (v < 0 || v > 100) fail(join(path, key), 'must be between 0 and 100');
  return v;
}

function positiveMs(o: Obj, key: string, path: string, dflt: number): number {
  const v = durationMs(o, key, path) ?? dflt;
  if (v <= 0) fail(join(path, key), 'must be positive');
  return v;
}

function decodeBindConfig(b: Obj | undefined, p: string): ClusterConfig['bindAddresses'] {
  const out: { v4: string | null; v6: string | null } = { v4: null, v6: null };
  if (!b) return out;
  const add = (sa: Obj, sp: string): void => {
    const address = reqStr(sa, 'address', sp);
    const family = isIP(address);
    if (family === 0) fail(join(sp, 'address'), `not an IP address: ${address}`);
    const key = family === 4 ? 'v4' : 'v6';
    if (out[key] !== null) fail(join(sp, 'address'), `a second IPv${family} source address`);
    out[key] = address;
  };
  add(reqObj(b, 'source_address', p), join(p, 'source_address'));
  list(b, 'extra_source_addresses', p, (a, ap) => add(reqObj(a, 'address', ap), join(ap, 'address')));
  list(b, 'additional_source_addresses', p, add); // deprecated form: SocketAddress entries
  return out;
}

export function decodeCluster(o: Obj): ClusterConfig {
  const name = reqStr(o, 'name', '');
  if (obj(o, 'cluster_type', '')) fail('cluster_type', 'custom cluster types are not supported');
  const type = enumOf(o, 'type', '', TYPES, 'STATIC');
  const eds = obj(o, 'eds_cluster_config', '');
  const cb = list(obj(o, 'circuit_breakers', '') ?? {}, 'thresholds', 'circuit_breakers', (t, p) => ({
    priority: t.priority ?? 'DEFAULT',
    maxConnections: wrapped(t, 'max_connections', p) ?? 1024,
    maxPendingRequests: wrapped(t, 'max_pending_requests', p) ?? 1024,
    maxRequests: wrapped(t, 'max_requests', p) ?? 1024,
    maxRetries: wrapped(t, 'max_retries', p) ?? 3,
  })).find((t) => t.priority === 'DEFAULT');
  const od = obj(o, 'outlier_detection', '');
  const odp = 'outlier_detection';
  const outlierDetection: OutlierDetection | null = od ? {
    consecutive5xx: wrapped(od, 'consecutive_5xx', odp) ?? 5,
    enforcingConsecutive5xx: percent(od, 'enforcing_consecutive_5xx', odp, 100),
    consecutiveGatewayFailure: wrapped(od, 'consecutive_gateway_failure', odp) ?? 5,
    enforcingConsecutiveGatewayFailure: percent(od, 'enforcing_consecutive_gateway_failure', odp, 0),
    splitExternalLocalOriginErrors: od.split_external_local_origin_errors === true,
    consecutiveLocalOriginFailure: wrapped(od, 'consecutive_local_origin_failure', odp) ?? 5,
    enforcingConsecutiveLocalOriginFailure: percent(od, 'enforcing_consecutive_local_origin_failure', odp, 100),
    intervalMs: positiveMs(od, 'interval', odp, 10000),
    baseEjectionTimeMs: positiveMs(od, 'base_ejection_time', odp, 30000),
    maxEjectionTimeMs: positiveMs(od, 'max_ejection_time', odp, 300000),
    maxEjectionPercent: percent(od, 'max_ejection_percent', odp, 10),
  } : null;
  const clb = obj(o, 'common_lb_config', '');
  const panic = clb ? obj(clb, 'healthy_panic_threshold', 'common_lb_config') : undefined;
  const healthyPanicThreshold = panic ? num(panic, 'value', 'common_lb_config.healthy_panic_threshold') ?? 0 : 50;
  if (healthyPanicThreshold < 0 || healthyPanicThreshold > 100) fail('common_lb_config.healthy_panic_threshold.value', 'must be between 0 and 100');
  let http2 = obj(o, 'http2_protocol_options', '') !== undefined;
  let useDownstreamProtocol = false;
  let maxRequestsPerConnection: number | null = null;
  let idleTimeoutMs: number | null = null;
  const tepo = obj(o, 'typed_extension_protocol_options', '');
  if (tepo) {
    for (const [k, v] of Object.entries(tepo)) {
      const p = `typed_extension_protocol_options["${k}"]`;
      if (!isObj(v)) fail(p, 'must be a message');
      if (v['@type'] !== EXT_TYPE_URL.httpProtocolOptions) continue;
      const common = obj(v, 'common_http_protocol_options', p);
      if (common) {
        const cp = join(p, 'common_http_protocol_options');
        maxRequestsPerConnection = wrapped(common, 'max_requests_per_connection', cp) ?? null;
        idleTimeoutMs = durationMs(common, 'idle_timeout', cp) ?? null;
      }
      const explicit = obj(v, 'explicit_http_config', p);
      if (explicit && obj(explicit, 'http2_protocol_options', join(p, 'explicit_http_config'))) http2 = true;
      if (obj(v, 'use_downstream_protocol_config', p)) useDownstreamProtocol = true;
    }
  }
  const la = obj(o, 'load_assignment', '');
  const loadAssignment = la ? decodeClusterLoadAssignment(la, 'load_assignment') : null;
  if ((type === 'STATIC' || type === 'STRICT_DNS' || type === 'LOGICAL_DNS') && !loadAssignment) fail('load_assignment', `required for type ${type}`);
  const lbPolicy = enumOf(o, 'lb_policy', '', POLICIES, 'ROUND_ROBIN');
  if (lbPolicy === 'MAGLEV' || lbPolicy === 'CLUSTER_PROVIDED') {
    if (!(lbPolicy === 'CLUSTER_PROVIDED' && type === 'ORIGINAL_DST')) fail('lb_policy', `unsupported value ${lbPolicy}`);
  }
  const rh = obj(o, 'ring_hash_lb_config', '');
  return deepFreeze({
    name,
    type,
    edsServiceName: (eds && str(eds, 'service_name', 'eds_cluster_config')) || name,
    lbPolicy,
    connectTimeoutMs: durationMs(o, 'connect_timeout', '') ?? 5000,
    circuitBreakers: cb ? { maxConnections: cb.maxConnections, maxPendingRequests: cb.maxPendingRequests, maxRequests: cb.maxRequests, maxRetries: cb.maxRetries }
      : { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 },
    outlierDetection,
    tls: decodeTransportSocket<UpstreamTls>(obj(o, 'transport_socket', ''), 'transport_socket', 'upstream'),
    transportSocketMatches: list(o, 'transport_socket_matches', '', (m, p) => ({
      name: str(m, 'name', p) ?? '',
      match: fromStruct(obj(m, 'match', p) as { fields?: Record<string, unknown> } | undefined),
      tls: decodeTransportSocket<UpstreamTls>(obj(m, 'transport_socket', p), join(p, 'transport_socket'), 'upstream'),
    })),
    http2,
    useDownstreamProtocol,
    loadAssignment,
    healthyPanicThreshold,
    maxRequestsPerConnection: maxRequestsPerConnection || null,
    idleTimeoutMs: idleTimeoutMs || null,
    bindAddresses: decodeBindConfig(obj(o, 'upstream_bind_config', ''), 'upstream_bind_config'),
    ringHash: lbPolicy === 'RING_HASH' ? { minimumRingSize: Number((rh && wrapped(rh, 'minimum_ring_size', 'ring_hash_lb_config')) || 1024) } : null,
  });
}
