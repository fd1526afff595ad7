/**
 * The envelope of a user-facing resource (Istio's API and Trellis's own), after decoding.
 * Specs are typed per kind in `kinds/`; a decoded resource is deeply frozen.
 */
import type { Source } from './hub.js';

/** Every kind Trellis reads from files or CRDs. */
export type Kind =
  | 'ServiceEntry'
  | 'WorkloadEntry'
  | 'WorkloadGroup'
  | 'VirtualService'
  | 'DestinationRule'
  | 'Gateway'
  | 'Sidecar'
  | 'PeerAuthentication'
  | 'AuthorizationPolicy'
  | 'RequestAuthentication'
  | 'MeshConfig'
  | 'Registry';

export interface ResourceMeta {
  readonly name: string;
  /** Defaults to the mesh's default namespace when the document gives none. */
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

/** Where a resource was read from, for error messages and `trellisctl analyze`. */
export interface ResourceOrigin extends Source {
  readonly file?: string;
  /** Index of the document within the file, from 0. */
  readonly document?: number;
  /** 1-based line where the document starts. */
  readonly line?: number;
}

export interface Resource<K extends Kind = Kind, S = unknown> {
  /** As written by the user, e.g. `networking.istio.io/v1beta1`; the decoder accepts v1, v1beta1, v1alpha3. */
  readonly apiVersion: string;
  readonly kind: K;
  readonly metadata: ResourceMeta;
  readonly spec: S;
  readonly origin?: ResourceOrigin;
}

/** Stable identity of a resource: `Kind/namespace/name`. */
export function resourceKey(r: { kind: string; metadata: { namespace: string; name: string } }): string {
  return `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
}
