/**
 * The kinds table: each kind's API group and spec schema, and the resource types built from them.
 */
import type { Kind, Resource } from '../resource.js';
import type { Schema } from '../decode/schema.js';
import { serviceEntrySpec, type ServiceEntrySpec } from './service-entry.js';
import { workloadEntrySpec, type WorkloadEntrySpec } from './workload-entry.js';
import { workloadGroupSpec, type WorkloadGroupSpec } from './workload-group.js';
import { virtualServiceSpec, type VirtualServiceSpec } from './virtual-service.js';
import { destinationRuleSpec, type DestinationRuleSpec } from './destination-rule.js';
import { gatewaySpec, type GatewaySpec } from './gateway.js';
import { sidecarSpec, type SidecarSpec } from './sidecar.js';
import { peerAuthenticationSpec, type PeerAuthenticationSpec } from './peer-authentication.js';
import { authorizationPolicySpec, type AuthorizationPolicySpec } from './authorization-policy.js';
import { requestAuthenticationSpec, type RequestAuthenticationSpec } from './request-authentication.js';
import { meshConfigSpec, type MeshConfigSpec } from './mesh-config.js';
import { registrySpec, type RegistrySpec } from './registry-config.js';

export * from './common.js';
export * from './service-entry.js';
export * from './workload-entry.js';
export * from './workload-group.js';
export * from './virtual-service.js';
export * from './destination-rule.js';
export * from './gateway.js';
export * from './sidecar.js';
export * from './peer-authentication.js';
export * from './authorization-policy.js';
export * from './request-authentication.js';
export * from './mesh-config.js';
export * from './registry-config.js';

export type ServiceEntryResource = Resource<'ServiceEntry', ServiceEntrySpec>;
export type WorkloadEntryResource = Resource<'WorkloadEntry', WorkloadEntrySpec>;
export type WorkloadGroupResource = Resource<'WorkloadGroup', WorkloadGroupSpec>;
export type VirtualServiceResource = Resource<'VirtualService', VirtualServiceSpec>;
export type DestinationRuleResource = Resource<'DestinationRule', DestinationRuleSpec>;
export type GatewayResource = Resource<'Gateway', GatewaySpec>;
export type SidecarResource = Resource<'Sidecar', SidecarSpec>;
export type PeerAuthenticationResource = Resource<'PeerAuthentication', PeerAuthenticationSpec>;
export type AuthorizationPolicyResource = Resource<'AuthorizationPolicy', AuthorizationPolicySpec>;
export type RequestAuthenticationResource = Resource<'RequestAuthentication', RequestAuthenticationSpec>;
export type MeshConfigResource = Resource<'MeshConfig', MeshConfigSpec>;
export type RegistryResource = Resource<'Registry', RegistrySpec>;

export type AnyResource =
  | ServiceEntryResource
  | WorkloadEntryResource
  | WorkloadGroupResource
  | VirtualServiceResource
  | DestinationRuleResource
  | GatewayResource
  | SidecarResource
  | PeerAuthenticationResource
  | AuthorizationPolicyResource
  | RequestAuthenticationResource
  | MeshConfigResource
  | RegistryResource;

export type ApiGroup = 'networking.istio.io' | 'security.istio.io' | 'trellis.dev';

/** API group → accepted versions, newest first. */
export const SUPPORTED_API_VERSIONS: Readonly<Record<ApiGroup, readonly string[]>> = Object.freeze({
  'networking.istio.io': Object.freeze(['v1', 'v1beta1', 'v1alpha3']),
  'security.istio.io': Object.freeze(['v1', 'v1beta1', 'v1alpha3']),
  'trellis.dev': Object.freeze(['v1alpha1']),
});

export interface KindEntry {
  readonly group: ApiGroup;
  /** The spec schema; `spec` is required for every kind except MeshConfig (all defaults). */
  readonly spec: Schema<unknown>;
  readonly specRequired: boolean;
}

const entry = <S>(group: ApiGroup, spec: Schema<S>, specRequired = true): KindEntry => ({ group, spec: spec as Schema<unknown>, specRequired });

/** Kind → group and spec schema. Built once per call of `kindTable` (schemas are stateless). */
export function kindTable(): Readonly<Record<Kind, KindEntry>> {
  return {
    ServiceEntry: entry('networking.istio.io', serviceEntrySpec()),
    WorkloadEntry: entry('networking.istio.io', workloadEntrySpec({ addressRequired: true })),
    WorkloadGroup: entry('networking.istio.io', workloadGroupSpec()),
    VirtualService: entry('networking.istio.io', virtualServiceSpec()),
    DestinationRule: entry('networking.istio.io', destinationRuleSpec()),
    Gateway: entry('networking.istio.io', gatewaySpec()),
    Sidecar: entry('networking.istio.io', sidecarSpec(), false),
    PeerAuthentication: entry('security.istio.io', peerAuthenticationSpec(), false),
    AuthorizationPolicy: entry('security.istio.io', authorizationPolicySpec(), false),
    RequestAuthentication: entry('security.istio.io', requestAuthenticationSpec(), false),
    MeshConfig: entry('trellis.dev', meshConfigSpec(), false),
    Registry: entry('trellis.dev', registrySpec()),
  };
}

export function isKind<K extends Kind>(r: AnyResource, kind: K): r is Extract<AnyResource, { kind: K }> {
  return r.kind === kind;
}
