/** `trellis.dev/v1alpha1` MeshConfig: mesh-wide settings of a Trellis control plane. */
import { arrayOf, bool, enumOf, mapOf, nonEmpty, num, obj, port, required, str, strings, withDefault, type Schema } from '../decode/schema.js';
import { checkDnsLabel, checkHost, isCidr, isDns1123Subdomain, isIP } from '../decode/syntax.js';

/** Registry kinds that `registryPriority` orders. */
export type RegistryType = 'kubernetes' | 'file' | 'consul' | 'eureka' | 'trellis';
export const REGISTRY_TYPES: readonly RegistryType[] = ['kubernetes', 'file', 'consul', 'eureka', 'trellis'];
/** The default `registryPriority`; `trellis` (another control plane's export) ranks after every listed type. */
const DEFAULT_REGISTRY_PRIORITY: readonly RegistryType[] = ['kubernetes', 'file', 'consul', 'eureka'];

/**
 * One gateway of a network (Istio's `MeshNetworks.Network.IstioNetworkGateway`): a fixed `address`, or
 * `registryServiceName`, a service whose endpoints are the gateway (e.g. the east-west gateway's ServiceEntry).
 * Exactly one of the two is set.
 */
export interface NetworkGateway {
  /** IP or hostname of the network's gateway (e.g. an east-west gateway). */
  readonly address?: string;
  /** Hostname of a service in the mesh whose endpoints are this network's gateway. */
  readonly registryServiceName?: string;
  /** Default 15443, Istio's multi-network gateway port. */
  readonly port: number;
  /** Locality of the gateway (`region/zone/subzone`); informational, endpoints keep their own. */
  readonly locality?: string;
}
/**
 * One way of saying which workloads are on a network (Istio's `NetworkEndpoints`): `fromCidr` (their address is in
 * the range) or `fromRegistry` (they come from that registry: a shard id such as `file:/etc/trellis/b`, or a
 * Registry's cluster id or name such as `cluster-b`). Exactly one is set.
 */
export interface NetworkEndpoints {
  readonly fromCidr?: string;
  readonly fromRegistry?: string;
}
export interface MeshNetwork {
  /** Workload address ranges that belong to this network (Trellis shorthand for `endpoints[].fromCidr`). */
  readonly cidrs?: readonly string[];
  /** Istio's `meshNetworks` form: address ranges and registries whose workloads are on this network. */
  readonly endpoints?: readonly NetworkEndpoints[];
  readonly gateways?: readonly NetworkGateway[];
}

export interface MeshConfigSpec {
  /** SPIFFE trust domain. Default `cluster.local`. */
  readonly trustDomain: string;
  /** Namespace given to resources that name none. Default `default`. */
  readonly defaultNamespace: string;
  /** Default `{mode: ALLOW_ANY}`. */
  readonly outboundTrafficPolicy: { readonly mode: 'ALLOW_ANY' | 'REGISTRY_ONLY' };
  /**
   * Which registry wins when two define the same hostname, first wins. Default `[kubernetes, file, consul, eureka]`;
   * types left out rank after the listed ones in the default order.
   */
  readonly registryPriority: readonly RegistryType[];
  /** CIDR from which the control plane allocates service VIPs. Default `240.240.0.0/16`. */
  readonly vipRange: string;
  readonly clusterId?: string;
  /** Network of workloads that name none. */
  readonly network?: string;
  /** Network name → its address ranges and gateways. */
  readonly networks?: Readonly<Record<string, MeshNetwork>>;
  /** Istio's `accessLogFile`: `/dev/stdout` or a file path; unset or empty = access logs off (the default). */
  readonly accessLogFile?: string;
  /** Istio's `accessLogEncoding`. Default TEXT. */
  readonly accessLogEncoding?: 'TEXT' | 'JSON';
  /** Istio's `accessLogFormat`: an Envoy format string (TEXT), empty = Istio's default format. */
  readonly accessLogFormat?: string;
  /** Istio's `enableTracing`. Default true (spans are reported only when a Zipkin address is set). */
  readonly enableTracing?: boolean;
  /** Istio's `defaultConfig` (ProxyConfig); Trellis reads `tracing` only. */
  readonly defaultConfig?: MeshProxyConfig;
}

/** Istio's `ProxyConfig.tracing` subset: the sampling percentage and the Zipkin collector. */
export interface MeshTracing {
  /** Percentage of requests that start a sampled trace, 0-100. Default 1 (Istio's default). */
  readonly sampling: number;
  /** Zipkin v2 collector `host:port`; spans are POSTed to `http://<address>/api/v2/spans`. */
  readonly zipkin?: { readonly address: string };
}
export interface MeshProxyConfig {
  readonly tracing?: MeshTracing;
}

const cidr = (s: string): string | undefined => (isCidr(s) ? undefined : `invalid CIDR \`${s}\``);

export const meshConfigSpec = (): Schema<MeshConfigSpec> =>
  obj<MeshConfigSpec>({
    trustDomain: withDefault(str((s) => (isDns1123Subdomain(s.toLowerCase()) ? undefined : `invalid trust domain \`${s}\`: expected a DNS name like cluster.local`)), 'cluster.local'),
    defaultNamespace: withDefault(str(checkDnsLabel), 'default'),
    outboundTrafficPolicy: withDefault(
      obj<{ mode: 'ALLOW_ANY' | 'REGISTRY_ONLY' }>({ mode: withDefault(enumOf(['ALLOW_ANY', 'REGISTRY_ONLY'] as const, { what: 'mode' }), 'ALLOW_ANY') }),
      { mode: 'ALLOW_ANY' },
    ),
    registryPriority: withDefault(
      arrayOf(enumOf(REGISTRY_TYPES, { what: 'registry type' }), { uniqueBy: (t) => t, uniqueWhat: 'registry type' }),
      DEFAULT_REGISTRY_PRIORITY,
    ),
    vipRange: withDefault(str(cidr), '240.240.0.0/16'),
    clusterId: str(),
    network: str(),
    networks: mapOf(
      obj<MeshNetwork>({
        cidrs: strings(cidr),
        endpoints: arrayOf(
          obj<NetworkEndpoints>({ fromCidr: str(cidr), fromRegistry: str(nonEmpty) }, { exactlyOne: [['fromCidr', 'fromRegistry']] }),
        ),
        gateways: arrayOf(
          obj<NetworkGateway>(
            {
              address: str((a) => (isIP(a) || checkHost(a, { bareWildcard: false, wildcard: false }) === undefined ? undefined : `invalid address \`${a}\`: expected an IP or a hostname`)),
              registryServiceName: str((h) => (checkHost(h, { bareWildcard: false, wildcard: false }) === undefined ? undefined : `invalid service hostname \`${h}\``)),
              port: withDefault(port(), 15443),
              locality: str(),
            },
            { exactlyOne: [['address', 'registryServiceName']] },
          ),
        ),
      }),
      (name) => (name === '' ? 'network name must not be empty' : undefined),
    ),
    accessLogFile: str((f) => (f === '' || f.startsWith('/') ? undefined : `invalid access log file \`${f}\`: expected /dev/stdout or an absolute path`)),
    accessLogEncoding: enumOf(['TEXT', 'JSON'] as const, { what: 'access log encoding' }),
    accessLogFormat: str(),
    enableTracing: bool(),
    defaultConfig: obj<MeshProxyConfig>({
      tracing: obj<MeshTracing>({
        sampling: withDefault(num({ min: 0, max: 100 }), 1),
        zipkin: obj<{ address: string }>({
          address: required(str((a) => (/^[^\s:/]+:\d{1,5}$/.test(a) || /^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(a) ? undefined : `invalid Zipkin address \`${a}\`: expected HOST:PORT`))),
        }),
      }),
    }),
  });

