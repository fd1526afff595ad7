/** Network and listener filters shared by the listener builders, in Envoy's v3 typed form. */
import { EXT_TYPE_URL, ISTIO_JSON_FORMAT, ISTIO_TEXT_FORMAT, toStruct } from '@trellis/api';
import type { MeshSettings, Snapshot } from '../../snapshot/types.js';
import { outboundClusterName } from '../names.js';
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

/**
 * MeshConfig `accessLogFile`/`accessLogEncoding`/`accessLogFormat` → an HCM / tcp_proxy `access_log` entry: a file
 * access log (`/dev/stdout` or a path) with Istio's default format for the encoding, or the given one (TEXT: an
 * Envoy format string; JSON: a JSON object of field → format string; an invalid JSON format falls back to Istio's).
 */
export function accessLogEntry(a: NonNullable<MeshSettings['accessLog']>): Obj {
  let logFormat: Obj;
  if (a.encoding === 'JSON') {
    let fields: Record<string, unknown> = { ...ISTIO_JSON_FORMAT };
    if (a.format) {
      try {
        const parsed: unknown = JSON.parse(a.format);
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) fields = parsed as Record<string, unknown>;
      } catch { /* Istio's default, as istiod does for an unparsable format */ }
    }
    logFormat = { json_format: toStruct(fields) };
  } else {
    const text = a.format ? (a.format.endsWith('\n') ? a.format : `${a.format}\n`) : ISTIO_TEXT_FORMAT;
    logFormat = { text_format_source: { inline_string: text } };
  }
  return { name: 'envoy.access_loggers.file', typed_config: { '@type': EXT_TYPE_URL.fileAccessLog, path: a.path, log_format: logFormat } };
}

/**
 * MeshConfig `defaultConfig.tracing` → HCM `tracing`: random sampling and, with a Zipkin address, Envoy's Zipkin
 * provider. `collector_cluster` names the outbound cluster of the address's service (`zipkin.istio-system:9411` →
 * `outbound|9411||zipkin.istio-system.svc.cluster.local` when that service is in the registry), as istiod does;
 * `collector_hostname` carries the address itself, which the Trellis proxy dials directly.
 */
export function tracingConfig(t: NonNullable<MeshSettings['tracing']>, snapshot: Snapshot): Obj {
  const cfg: Obj = { random_sampling: { value: t.sampling } };
  if (t.zipkinAddress) {
    const i = t.zipkinAddress.lastIndexOf(':');
    const host = t.zipkinAddress.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(t.zipkinAddress.slice(i + 1));
    const svc = snapshot.services.find((s) => s.service.hostname === host) ?? snapshot.services.find((s) => s.service.hostname.startsWith(`${host}.`));
    cfg.provider = {
      name: 'envoy.tracers.zipkin',
      typed_config: {
        '@type': EXT_TYPE_URL.zipkinConfig,
        collector_cluster: outboundClusterName(port, undefined, svc?.service.hostname ?? host),
        collector_endpoint: '/api/v2/spans',
        collector_endpoint_version: 'HTTP_JSON',
        collector_hostname: t.zipkinAddress,
        trace_id_128bit: true,
        shared_span_context: { value: false },
      },
    };
  }
  return cfg;
}

/**
 * Adds the mesh's access log (HCMs and tcp_proxy filters) and tracing (HCMs) to generated listeners. A no-op, the
 * same objects back, when the MeshConfig enables neither (the default); otherwise copies along the changed paths,
 * so listener bodies shared with other proxies (generation cache) are never mutated.
 */
export function withMeshTelemetry(listeners: Record<string, unknown>[], snapshot: Snapshot): Record<string, unknown>[] {
  const { accessLog, tracing } = snapshot.mesh;
  if (!accessLog && !tracing) return listeners;
  const log = accessLog ? [accessLogEntry(accessLog)] : null;
  const trace = tracing ? tracingConfig(tracing, snapshot) : null;
  const filter = (f: Obj): Obj => {
    const tc = f.typed_config as Obj | undefined;
    if (!tc) return f;
    if (f.name === HCM_FILTER) return { ...f, typed_config: { ...tc, ...(log ? { access_log: log } : {}), ...(trace ? { tracing: trace } : {}) } };
    if (f.name === TCP_PROXY_FILTER && log) return { ...f, typed_config: { ...tc, access_log: log } };
    return f;
  };
  const chain = (c: Obj): Obj => (Array.isArray(c.filters) ? { ...c, filters: (c.filters as Obj[]).map(filter) } : c);
  return listeners.map((l) => ({
    ...l,
    ...(Array.isArray(l.filter_chains) ? { filter_chains: (l.filter_chains as Obj[]).map(chain) } : {}),
    ...(l.default_filter_chain ? { default_filter_chain: chain(l.default_filter_chain as Obj) } : {}),
  }));
}
