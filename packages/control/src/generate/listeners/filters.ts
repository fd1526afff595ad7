/** Network and listener filters shared by the listener builders, in Envoy's v3 typed form. */
import { EXT_TYPE_URL } from '@trellis/api';
import { adsConfigSource } from '../proto.js';
import { CORS_FILTER, FAULT_FILTER, ROUTER_FILTER } from '../http-route.js';

type Obj = Record<string, unknown>;

export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
export const TCP_PROXY_FILTER = 'envoy.filters.network.tcp_proxy';

export function originalDstFilter(): Obj {
  return { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': EXT_TYPE_URL.originalDst } };
}

export function tlsInspectorFilter(): Obj {
  return { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': EXT_TYPE_URL.tlsInspector } };
}

export function tcpProxy(statPrefix: string, cluster: string | readonly { name: string; weight: number }[]): Obj {
  const cfg: Obj = { '@type': EXT_TYPE_URL.tcpProxy, stat_prefix: statPrefix };
  if (typeof cluster === 'string') cfg.cluster = cluster;
  else cfg.weighted_clusters = { clusters: cluster.map((c) => ({ name: c.name, weight: c.weight })) };
  return { name: TCP_PROXY_FILTER, typed_config: cfg };
}

/** The HTTP filters of sidecar/gateway HCMs: fault and CORS (configured per route), then the router. */
export function httpFilters(): Obj[] {
  return [
    { name: FAULT_FILTER, typed_config: { '@type': EXT_TYPE_URL.fault } },
    { name: CORS_FILTER, typed_config: { '@type': EXT_TYPE_URL.cors } },
    { name: ROUTER_FILTER, typed_config: { '@type': EXT_TYPE_URL.router } },
  ];
}

export function routerOnly(): Obj[] {
  return [{ name: ROUTER_FILTER, typed_config: { '@type': EXT_TYPE_URL.router } }];
}

export interface HcmOptions {
  readonly statPrefix: string;
  /** RDS name, or an inline route configuration. */
  readonly rds?: string;
  readonly routeConfig?: Obj;
  readonly filters?: Obj[];
  readonly useRemoteAddress?: boolean;
  /** Inbound mTLS chains forward the peer identity (Istio: APPEND_FORWARD of subject, URI, DNS). */
  readonly forwardClientCert?: boolean;
  /**
   * Normalise request paths before routing and authorization (inbound and gateway HCMs, where policy is
   * enforced): RFC 3986 normalisation (`normalize_path`: dot segments, percent-decoding of unreserved characters,
   * backslashes) plus `merge_slashes` — Istio's MERGE_SLASHES path normalization.
   */
  readonly normalizePath?: boolean;
}

export function hcmConfig(o: HcmOptions): Obj {
  const cfg: Obj = { '@type': EXT_TYPE_URL.httpConnectionManager, stat_prefix: o.statPrefix, codec_type: 'AUTO' };
  if (o.rds !== undefined) cfg.rds = { route_config_name: o.rds, config_source: adsConfigSource() };
  else cfg.route_config = o.routeConfig;
  cfg.http_filters = o.filters ?? httpFilters();
  if (o.useRemoteAddress === true) cfg.use_remote_address = { value: true };
  if (o.normalizePath === true) {
    cfg.normalize_path = { value: true };
    cfg.merge_slashes = true;
  }
  if (o.forwardClientCert === true) {
    cfg.forward_client_cert_details = 'APPEND_FORWARD';
    cfg.set_current_client_cert_details = { subject: { value: true }, uri: true, dns: true };
  }
  return cfg;
}

export function hcm(o: HcmOptions): Obj {
  return { name: HCM_FILTER, typed_config: hcmConfig(o) };
}

/** Drops filter chains whose match repeats an earlier one (Envoy rejects duplicate matches). */
export function dedupeChains(chains: readonly Obj[]): Obj[] {
  const seen = new Set<string>();
  return chains.filter((c) => {
    const key = JSON.stringify(c.filter_chain_match ?? {});
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
