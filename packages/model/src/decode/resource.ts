/**
 * `decodeResource`: one parsed YAML/JSON document → a typed, normalized, deeply frozen resource, or every violation
 * the document has. `encodeResource` is its inverse (Istio's JSON shape with defaults written out), so that
 * `decodeResource(encodeResource(r))` deep-equals `r` (given the same `origin`).
 */
import type { Kind, ResourceOrigin } from '../resource.js';
import { kindTable, SUPPORTED_API_VERSIONS, type AnyResource, type ApiGroup } from '../kinds/index.js';
import { deepFreeze, INVALID, isPlainObject, labels, obj, str, stringMap, typeName, type Schema } from './schema.js';
import { checkDnsLabel, checkResourceName } from './syntax.js';
import { Ctx, editDistance, nearest, unknownFieldMessage, type Violation } from './violations.js';

export type DecodeResult =
  | { ok: true; resource: AnyResource }
  | { ok: false; violations: readonly Violation[]; kind?: string; name?: string; namespace?: string };

export interface DecodeOptions {
  /** Namespace of resources whose metadata gives none. Default `default`. */
  defaultNamespace?: string;
  /** Attached to the decoded resource as `origin`. */
  origin?: ResourceOrigin;
}

const KINDS = kindTable();
const KIND_NAMES = Object.keys(KINDS) as Kind[];
const GROUPS = Object.keys(SUPPORTED_API_VERSIONS) as ApiGroup[];
const TOP_LEVEL = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

/** Accepts any value; for Kubernetes-managed metadata fields that Trellis reads past. */
const passthrough: Schema<unknown> = { decode: (v) => v, encode: (v) => v };

interface Meta {
  name?: string;
  namespace?: string;
  labels?: Readonly<Record<string, string>>;
  annotations?: Readonly<Record<string, string>>;
  uid?: unknown;
  resourceVersion?: unknown;
  generation?: unknown;
  creationTimestamp?: unknown;
  deletionTimestamp?: unknown;
  deletionGracePeriodSeconds?: unknown;
  managedFields?: unknown;
  ownerReferences?: unknown;
  finalizers?: unknown;
  generateName?: unknown;
  selfLink?: unknown;
}

const metadataSchema = obj<Meta>({
  name: { schema: str(checkResourceName), required: true },
  namespace: str((n) => checkDnsLabel(n)?.replace('invalid name', 'invalid namespace')),
  labels: labels(),
  annotations: stringMap(),
  uid: passthrough,
  resourceVersion: passthrough,
  generation: passthrough,
  creationTimestamp: passthrough,
  deletionTimestamp: passthrough,
  deletionGracePeriodSeconds: passthrough,
  managedFields: passthrough,
  ownerReferences: passthrough,
  finalizers: passthrough,
  generateName: passthrough,
  selfLink: passthrough,
});

function checkKind(raw: unknown, cx: Ctx): Kind | undefined {
  if (raw === undefined || raw === null) {
    cx.add('kind', 'required field is missing');
    return undefined;
  }
  if (typeof raw !== 'string') {
    cx.add('kind', `expected a string, got ${typeName(raw)}`);
    return undefined;
  }
  if ((KIND_NAMES as string[]).includes(raw)) return raw as Kind;
  const near = nearest(raw, KIND_NAMES);
  cx.add('kind', `unsupported kind \`${raw}\`${near ? `; did you mean \`${near}\`?` : `; expected one of ${KIND_NAMES.join(', ')}`}`);
  return undefined;
}

function checkApiVersion(raw: unknown, kind: Kind | undefined, cx: Ctx): void {
  if (raw === undefined || raw === null) {
    cx.add('apiVersion', 'required field is missing');
    return;
  }
  if (typeof raw !== 'string') {
    cx.add('apiVersion', `expected a string, got ${typeName(raw)}`);
    return;
  }
  const slash = raw.indexOf('/');
  if (slash < 0) {
    cx.add('apiVersion', `invalid apiVersion \`${raw}\`: expected group/version, like networking.istio.io/v1`);
    return;
  }
  const group = raw.slice(0, slash);
  const version = raw.slice(slash + 1);
  if (!(GROUPS as string[]).includes(group)) {
    cx.add('apiVersion', `unsupported API group \`${group}\`; expected one of ${GROUPS.join(', ')}`);
    return;
  }
  const versions = SUPPORTED_API_VERSIONS[group as ApiGroup];
  if (!versions.includes(version)) {
    cx.add('apiVersion', `unsupported version ${raw}; expected one of ${versions.join(', ')}`);
    return;
  }
  if (kind !== undefined && KINDS[kind].group !== group) {
    cx.add('apiVersion', `kind ${kind} is not in API group ${group}; use ${KINDS[kind].group}/${SUPPORTED_API_VERSIONS[KINDS[kind].group][0]}`);
  }
}

/**
 * Whether a document is some other system's resource (a Kubernetes Deployment, ConfigMap, NetworkPolicy, a CRD of
 * another project) that a directory of mixed manifests may hold: its `apiVersion` names a group Trellis does not
 * serve and that is no typo of one (edit distance over 2; the core group `v1` counts as a group), and its `kind` is
 * not a Trellis kind. Readers skip such documents instead of rejecting them; anything near a Trellis group or kind
 * still goes through `decodeResource` and gets its errors.
 */
export function isForeignResource(doc: unknown): boolean {
  if (!isPlainObject(doc) || typeof doc.apiVersion !== 'string' || typeof doc.kind !== 'string') return false;
  const kind = doc.kind.toLowerCase();
  if (KIND_NAMES.some((k) => k.toLowerCase() === kind)) return false;
  const slash = doc.apiVersion.indexOf('/');
  const group = (slash < 0 ? '' : doc.apiVersion.slice(0, slash)).toLowerCase();
  return GROUPS.every((g) => editDistance(group, g) > 2);
}

export function decodeResource(doc: unknown, options: DecodeOptions = {}): DecodeResult {
  const cx = new Ctx();
  if (!isPlainObject(doc)) {
    cx.add('', `expected a resource (an object with apiVersion, kind, metadata and spec), got ${typeName(doc)}`);
    return { ok: false, violations: cx.violations };
  }
  for (const key of Object.keys(doc)) if (!TOP_LEVEL.includes(key)) cx.add(key, unknownFieldMessage(key, TOP_LEVEL));
  const kind = checkKind(doc.kind, cx);
  checkApiVersion(doc.apiVersion, kind, cx);

  let meta: Meta | undefined;
  if (doc.metadata === undefined || doc.metadata === null) cx.add('metadata', 'required field is missing');
  else {
    const m = metadataSchema.decode(doc.metadata, 'metadata', cx);
    if (m !== INVALID) meta = m;
  }
  const rawMeta = isPlainObject(doc.metadata) ? doc.metadata : {};
  const name = meta?.name ?? (typeof rawMeta.name === 'string' ? rawMeta.name : undefined);
  const namespace = meta?.namespace ?? (typeof rawMeta.namespace === 'string' ? rawMeta.namespace : options.defaultNamespace ?? 'default');

  let spec: unknown = INVALID;
  if (kind !== undefined) {
    const entry = KINDS[kind];
    if (doc.spec === undefined || doc.spec === null) {
      if (entry.specRequired) cx.add('spec', 'required field is missing');
      else spec = entry.spec.decode({}, 'spec', cx);
    } else spec = entry.spec.decode(doc.spec, 'spec', cx);
  }

  if (cx.violations.length > 0 || kind === undefined || meta === undefined || spec === INVALID) {
    const failed: DecodeResult = { ok: false, violations: cx.violations };
    if (typeof doc.kind === 'string') failed.kind = doc.kind;
    if (name !== undefined) failed.name = name;
    failed.namespace = namespace;
    return failed;
  }
  const resource = {
    apiVersion: doc.apiVersion as string,
    kind,
    metadata: { name: meta.name as string, namespace, labels: meta.labels ?? {}, annotations: meta.annotations ?? {} },
    spec,
    ...(options.origin !== undefined ? { origin: { ...options.origin } } : {}),
  } as AnyResource;
  return { ok: true, resource: deepFreeze(resource) };
}

/** Back to Istio's YAML/JSON shape (durations as strings, percentages as `{value}`, defaults written out). */
export function encodeResource(r: AnyResource): Record<string, unknown> {
  const metadata: Record<string, unknown> = { name: r.metadata.name, namespace: r.metadata.namespace };
  if (Object.keys(r.metadata.labels).length > 0) metadata.labels = { ...r.metadata.labels };
  if (Object.keys(r.metadata.annotations).length > 0) metadata.annotations = { ...r.metadata.annotations };
  return { apiVersion: r.apiVersion, kind: r.kind, metadata, spec: KINDS[r.kind].spec.encode(r.spec) };
}

