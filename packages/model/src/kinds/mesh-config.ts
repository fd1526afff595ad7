/** `trellis.dev/v1alpha1` MeshConfig: mesh-wide settings of a Trellis control plane. */
import { arrayOf, enumOf, mapOf, obj, port, required, str, strings, withDefault, type Schema } from '../decode/schema.js';
import { checkDnsLabel, checkHost, isCidr, isDns1123Subdomain, isIP } from '../decode/syntax.js';

/** Registry kinds that `registryPriority` orders. */
export type RegistryType = 'kubernetes' | 'file' | 'consul' | 'eureka';
export const REGISTRY_TYPES: readonly RegistryType[] = ['kubernetes', 'file', 'consul', 'eureka'];

export interface NetworkGateway {
  /** IP or hostname of the network's gateway (e.g. an east-west gateway). */
  readonly address: string;
  /** Default 15443, Istio's multi-network gateway port. */
  readonly port: number;
}
export interface MeshNetwork {
  /** Workload address ranges that belong to this network. */
  readonly cidrs?: readonly string[];
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
      REGISTRY_TYPES,
    ),
    vipRange: withDefault(str(cidr), '240.240.0.0/16'),
    clusterId: str(),
    network: str(),
    networks: mapOf(
      obj<MeshNetwork>({
        cidrs: strings(cidr),
        gateways: arrayOf(
          obj<NetworkGateway>({
            address: required(str((a) => (isIP(a) || checkHost(a, { bareWildcard: false, wildcard: false }) === undefined ? undefined : `invalid address \`${a}\``))),
            port: withDefault(port(), 15443),
          }),
        ),
      }),
    ),
  });

