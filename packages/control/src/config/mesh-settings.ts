/**
 * Mesh-wide settings: built-in defaults, then flags/environment, then MeshConfig resources, field by field.
 *
 * Precedence, lowest to highest:
 *   1. built-in defaults (`DEFAULT_MESH_SETTINGS`);
 *   2. `trellis-control` flags / environment (`--trust-domain`, `--cluster-id`, `--network`);
 *   3. the `--mesh-config FILE` resource;
 *   4. MeshConfig resources from the registries (config directory), in (namespace, name) order, later wins.
 * A MeshConfig is what an operator edits at run time, so it wins over the process's start-up flags; the flags are the
 * defaults "under" it. Only fields a MeshConfig actually sets override anything.
 */
import type { MeshNetwork, SourceKind } from '@trellis/model';
import type { MeshSettings } from '../snapshot/types.js';

export const DEFAULT_REGISTRY_PRIORITY: readonly SourceKind[] = Object.freeze(['kubernetes', 'file', 'consul', 'eureka', 'control']);

export const DEFAULT_MESH_SETTINGS: MeshSettings = Object.freeze({
  trustDomain: 'cluster.local',
  defaultNamespace: 'default',
  outboundTrafficPolicy: 'ALLOW_ANY',
  registryPriority: DEFAULT_REGISTRY_PRIORITY,
  vipRange: '240.240.0.0/16',
  clusterId: 'Kubernetes',
  network: '',
  domainSuffix: 'cluster.local',
});

/** A MeshConfig-like resource: only `spec` is read; unknown fields are ignored here (the decoder rejects them). */
export interface MeshConfigLike {
  readonly metadata: { readonly namespace: string; readonly name: string };
  readonly spec: unknown;
}

const KINDS: readonly SourceKind[] = ['kubernetes', 'file', 'consul', 'eureka', 'trellis', 'control'];

/** The fields of one MeshConfig spec that set something, as a partial MeshSettings. */
export function meshOverrides(spec: unknown): Partial<MeshSettings> {
  if (spec === null || typeof spec !== 'object') return {};
  const s = spec as Record<string, unknown>;
  const out: { -readonly [K in keyof MeshSettings]?: MeshSettings[K] } = {};
  const str = (k: string): string | undefined => (typeof s[k] === 'string' ? (s[k] as string) : undefined);
  // The MeshConfig decoder fills its defaults in, so a value equal to the default cannot be told from an unset
  // field: it does not override (a flag such as --trust-domain stays in force under a MeshConfig that omits it).
  const D = DEFAULT_MESH_SETTINGS;
  const td = str('trustDomain'); if (td && td !== D.trustDomain) out.trustDomain = td;
  const dn = str('defaultNamespace'); if (dn && dn !== D.defaultNamespace) out.defaultNamespace = dn;
  const vr = str('vipRange'); if (vr && vr !== D.vipRange) out.vipRange = vr;
  const ci = str('clusterId'); if (ci) out.clusterId = ci;
  const nw = str('network'); if (nw !== undefined) out.network = nw;
  const ds = str('domainSuffix'); if (ds) out.domainSuffix = ds;
  // The networks table is replaced as a whole by the MeshConfig that sets it (like any other field).
  const nets = s.networks;
  if (nets !== null && typeof nets === 'object' && !Array.isArray(nets)) out.networks = nets as Readonly<Record<string, MeshNetwork>>;
  const otp = s.outboundTrafficPolicy;
  const mode = typeof otp === 'string' ? otp : otp && typeof otp === 'object' ? (otp as Record<string, unknown>).mode : undefined;
  if (mode === 'REGISTRY_ONLY') out.outboundTrafficPolicy = mode;
  const alf = str('accessLogFile');
  if (alf !== undefined) {
    // An empty accessLogFile turns access logs off (Istio), also over an earlier MeshConfig that set one.
    const enc = str('accessLogEncoding');
    out.accessLog = alf === '' ? undefined : Object.freeze({ path: alf, encoding: enc === 'JSON' ? 'JSON' : 'TEXT', format: str('accessLogFormat') ?? '' });
  }
  const tracing = meshTracing(s);
  if (tracing !== undefined || s.enableTracing === false) out.tracing = tracing;
  const rp = s.registryPriority;
  if (Array.isArray(rp) && rp.every((k) => KINDS.includes(k as SourceKind))) {
    // Kinds not listed keep their default relative order after the listed ones.
    const listed = rp as SourceKind[];
    if (listed.join() !== DEFAULT_REGISTRY_PRIORITY.slice(0, listed.length).join()) out.registryPriority = Object.freeze([...listed, ...DEFAULT_REGISTRY_PRIORITY.filter((k) => !listed.includes(k))]);
  }
  return out;
}

/**
 * `defaultConfig.tracing` (sampling percent, Istio's default 1; Zipkin address) and `enableTracing: false`, which
 * turns tracing off (no `tracing` on HCMs). Undefined when the spec says nothing about tracing.
 */
function meshTracing(s: Record<string, unknown>): MeshSettings['tracing'] | undefined {
  if (s.enableTracing === false) return undefined;
  const dc = s.defaultConfig;
  const t = dc && typeof dc === 'object' ? (dc as Record<string, unknown>).tracing : undefined;
  if (!t || typeof t !== 'object') return undefined;
  const tr = t as Record<string, unknown>;
  const sampling = typeof tr.sampling === 'number' && tr.sampling >= 0 && tr.sampling <= 100 ? tr.sampling : 1;
  const z = tr.zipkin && typeof tr.zipkin === 'object' ? (tr.zipkin as Record<string, unknown>).address : undefined;
  return Object.freeze({ sampling, zipkinAddress: typeof z === 'string' && z !== '' ? z : null });
}

export interface MeshDefaults {
  readonly trustDomain?: string;
  readonly clusterId?: string;
  readonly network?: string;
}

/** Applies the precedence above. `fileConfig` is the `--mesh-config` resource, `registryConfigs` those from shards. */
export function resolveMeshSettings(
  defaults: MeshDefaults,
  fileConfig: MeshConfigLike | undefined,
  registryConfigs: readonly MeshConfigLike[],
): MeshSettings {
  let m: MeshSettings = { ...DEFAULT_MESH_SETTINGS };
  if (defaults.trustDomain) m = { ...m, trustDomain: defaults.trustDomain };
  if (defaults.clusterId) m = { ...m, clusterId: defaults.clusterId };
  if (defaults.network !== undefined) m = { ...m, network: defaults.network };
  if (fileConfig) m = { ...m, ...meshOverrides(fileConfig.spec) };
  const sorted = [...registryConfigs].sort((a, b) =>
    a.metadata.namespace === b.metadata.namespace
      ? a.metadata.name.localeCompare(b.metadata.name)
      : a.metadata.namespace.localeCompare(b.metadata.namespace),
  );
  for (const c of sorted) m = { ...m, ...meshOverrides(c.spec) };
  return Object.freeze({ ...m, registryPriority: Object.freeze([...m.registryPriority]) });
}
