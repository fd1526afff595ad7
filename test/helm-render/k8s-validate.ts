/**
 * Structural validation of rendered Kubernetes objects, for the chart test: there is no OpenAPI document to
 * validate against offline (kubectl validates only against a server), so this checks what the API server would
 * refuse or what would silently not work, for the kinds the chart renders:
 *
 * - apiVersion/kind pairs served by Kubernetes 1.30 (or by a CRD of the same render), scope (namespace or not);
 * - names: DNS-1123 subdomain (DNS-1035 label for Services, DNS-1123 label for containers, ports, volumes);
 *   label keys and values;
 * - required fields and allowed top-level/container fields per kind;
 * - workloads: selector ⊆ pod template labels, container ports 1-65535 with unique IANA names, probes naming a
 *   declared port, volume mounts naming declared volumes;
 * - Services select the pods of a rendered workload and target one of their container ports; PDBs select a
 *   workload; bindings name a rendered role and service account; webhooks name a rendered Service port;
 * - CRDs: name `plural.group`, exactly one storage version, structural schema root, printer columns.
 *
 * Every problem is a string `Kind/namespace/name: path: reason`; an empty list means valid.
 */

export type K8sObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
};

/** apiVersion → kind → namespaced, for the built-in kinds of Kubernetes 1.30 that a chart may render. */
export const BUILTIN_KINDS: Readonly<Record<string, Readonly<Record<string, boolean>>>> = {
  v1: { ConfigMap: true, Secret: true, Service: true, ServiceAccount: true, Namespace: false, Pod: true, PersistentVolumeClaim: true },
  'apps/v1': { Deployment: true, DaemonSet: true, StatefulSet: true },
  'rbac.authorization.k8s.io/v1': { ClusterRole: false, ClusterRoleBinding: false, Role: true, RoleBinding: true },
  'policy/v1': { PodDisruptionBudget: true },
  'admissionregistration.k8s.io/v1': { ValidatingWebhookConfiguration: false, MutatingWebhookConfiguration: false },
  'apiextensions.k8s.io/v1': { CustomResourceDefinition: false },
  'autoscaling/v2': { HorizontalPodAutoscaler: true },
  'networking.k8s.io/v1': { NetworkPolicy: true, Ingress: true },
};

const TOP_LEVEL: Readonly<Record<string, readonly string[]>> = {
  ConfigMap: ['data', 'binaryData', 'immutable'],
  Secret: ['data', 'stringData', 'type', 'immutable'],
  ServiceAccount: ['automountServiceAccountToken', 'imagePullSecrets', 'secrets'],
  ClusterRole: ['rules', 'aggregationRule'],
  ClusterRoleBinding: ['roleRef', 'subjects'],
  ValidatingWebhookConfiguration: ['webhooks'],
};

const CONTAINER_FIELDS = ['name', 'image', 'imagePullPolicy', 'command', 'args', 'env', 'envFrom', 'ports', 'readinessProbe', 'livenessProbe', 'startupProbe', 'resources', 'securityContext', 'volumeMounts', 'workingDir', 'lifecycle'];
const POD_SPEC_FIELDS = ['containers', 'initContainers', 'volumes', 'serviceAccountName', 'securityContext', 'nodeSelector', 'tolerations', 'affinity', 'imagePullSecrets', 'priorityClassName', 'hostNetwork', 'dnsPolicy', 'terminationGracePeriodSeconds', 'topologySpreadConstraints'];

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export const isDns1123Label = (s: string): boolean => s.length <= 63 && DNS1123_LABEL.test(s);
export const isDns1123Subdomain = (s: string): boolean => s.length <= 253 && DNS1123_SUBDOMAIN.test(s);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const objs = (v: unknown): Obj[] => arr(v).filter(isObj);

function labelProblems(labels: unknown, path: string, add: (p: string, m: string) => void): void {
  if (labels === undefined) return;
  if (!isObj(labels)) return add(path, 'must be a map');
  for (const [k, v] of Object.entries(labels)) {
    const [prefix, name] = k.includes('/') ? k.split('/', 2) : [undefined, k];
    if (prefix !== undefined && !isDns1123Subdomain(prefix)) add(`${path}.${k}`, `label key prefix ${prefix} is not a DNS-1123 subdomain`);
    if (name.length > 63 || !LABEL_NAME.test(name)) add(`${path}.${k}`, 'invalid label key');
    if (typeof v !== 'string') add(`${path}.${k}`, `label value must be a string, got ${typeof v}`);
    else if (v !== '' && (v.length > 63 || !LABEL_NAME.test(v))) add(`${path}.${k}`, `invalid label value ${JSON.stringify(v)}`);
  }
}

function matches(selector: unknown, labels: unknown): boolean {
  if (!isObj(selector) || !isObj(labels) || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

interface PodOwner {
  readonly id: string;
  readonly namespace?: string;
  readonly labels: Obj;
  readonly ports: Map<string | number, number>;
}

/** Flags a binary accepts, by the container name that runs it. */
export type FlagTable = Readonly<Record<string, ReadonlySet<string>>>;

export function validateObjects(objects: readonly K8sObject[], flags: FlagTable): string[] {
  const problems: string[] = [];
  const crdKinds = new Map<string, boolean>();
  for (const o of objects) {
    if (o.kind !== 'CustomResourceDefinition') continue;
    const spec = o.spec as Obj;
    const names = spec?.names as Obj;
    for (const v of objs(spec?.versions)) if (v.served) crdKinds.set(`${String(spec.group)}/${String(v.name)} ${String(names?.kind)}`, spec.scope === 'Namespaced');
  }
  const owners: PodOwner[] = [];
  const seen = new Set<string>();

  for (const o of objects) {
    const id = `${o.kind}/${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;
    const add = (path: string, msg: string): void => void problems.push(`${id}: ${path}: ${msg}`);
    if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') { add('', 'apiVersion and kind are required'); continue; }
    const builtin = BUILTIN_KINDS[o.apiVersion]?.[o.kind];
    const custom = crdKinds.get(`${o.apiVersion} ${o.kind}`);
    const namespaced = builtin ?? custom;
    if (namespaced === undefined) { add('apiVersion', `${o.apiVersion} ${o.kind} is not served by Kubernetes 1.30 nor by a CRD of this render`); continue; }
    if (!isObj(o.metadata) || typeof o.metadata.name !== 'string') { add('metadata.name', 'required'); continue; }
    if (seen.has(`${o.apiVersion} ${id}`)) add('metadata.name', 'duplicate object');
    seen.add(`${o.apiVersion} ${id}`);
    const nameOk = o.kind === 'Service' ? o.metadata.name.length <= 63 && DNS1035_LABEL.test(o.metadata.name) : isDns1123Subdomain(o.metadata.name);
    if (!nameOk) add('metadata.name', `${o.metadata.name} is not a valid ${o.kind === 'Service' ? 'DNS-1035 label' : 'DNS-1123 subdomain'}`);
    if (namespaced && !o.metadata.namespace) add('metadata.namespace', 'a namespaced object needs a namespace');
    if (!namespaced && o.metadata.namespace) add('metadata.namespace', 'a cluster-scoped object has no namespace');
    if (o.metadata.namespace && !isDns1123Label(o.metadata.namespace)) add('metadata.namespace', 'not a DNS-1123 label');
    labelProblems(o.metadata.labels, 'metadata.labels', add);
    const allowedTop = TOP_LEVEL[o.kind] ?? ['spec', 'status'];
    for (const k of Object.keys(o)) if (!['apiVersion', 'kind', 'metadata', ...allowedTop].includes(k)) add(k, `unknown field for ${o.kind}`);

    const spec = isObj(o.spec) ? o.spec : {};
    switch (o.kind) {
      case 'Deployment':
      case 'DaemonSet': {
        const sel = (spec.selector as Obj | undefined)?.matchLabels;
        const tpl = spec.template as Obj | undefined;
        const podLabels = (tpl?.metadata as Obj | undefined)?.labels;
        labelProblems(podLabels, 'spec.template.metadata.labels', add);
        if (!matches(sel, podLabels)) add('spec.selector.matchLabels', 'must be non-empty and match spec.template.metadata.labels');
        if (o.kind === 'Deployment' && spec.replicas !== undefined && (!Number.isInteger(spec.replicas) || (spec.replicas as number) < 0)) add('spec.replicas', 'must be a non-negative integer');
        const pod = tpl?.spec;
        if (!isObj(pod)) { add('spec.template.spec', 'required'); break; }
        for (const k of Object.keys(pod)) if (!POD_SPEC_FIELDS.includes(k)) add(`spec.template.spec.${k}`, 'unknown pod spec field');
        const volumes = new Set<string>();
        for (const [i, v] of objs(pod.volumes).entries()) {
          const n = String(v.name);
          if (!isDns1123Label(n)) add(`spec.template.spec.volumes[${i}].name`, `${n} is not a DNS-1123 label`);
          if (volumes.has(n)) add(`spec.template.spec.volumes[${i}].name`, `duplicate volume ${n}`);
          volumes.add(n);
          const sources = Object.keys(v).filter((k) => k !== 'name');
          if (sources.length !== 1) add(`spec.template.spec.volumes[${i}]`, `exactly one volume source expected, got ${sources.join(', ') || 'none'}`);
        }
        const containers = objs(pod.containers);
        if (containers.length === 0) add('spec.template.spec.containers', 'at least one container is required');
        const ports = new Map<string | number, number>();
        for (const [ci, c] of containers.entries()) {
          const cp = `spec.template.spec.containers[${ci}]`;
          for (const k of Object.keys(c)) if (!CONTAINER_FIELDS.includes(k)) add(`${cp}.${k}`, 'unknown container field');
          if (typeof c.name !== 'string' || !isDns1123Label(c.name)) add(`${cp}.name`, 'required, a DNS-1123 label');
          if (typeof c.image !== 'string' || c.image === '' || /\s/.test(c.image)) add(`${cp}.image`, 'required, no whitespace');
          if (c.imagePullPolicy !== undefined && !['Always', 'IfNotPresent', 'Never'].includes(String(c.imagePullPolicy))) add(`${cp}.imagePullPolicy`, 'Always, IfNotPresent or Never');
          const portNames = new Set<string>();
          for (const [pi, p] of objs(c.ports).entries()) {
            const n = p.containerPort;
            if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 65535) add(`${cp}.ports[${pi}].containerPort`, `${String(n)} is not in 1-65535`);
            if (p.name !== undefined) {
              const pn = String(p.name);
              if (pn.length > 15 || !IANA_SVC_NAME.test(pn) || !/[a-z]/.test(pn) || pn.includes('--')) add(`${cp}.ports[${pi}].name`, `${pn} is not an IANA service name (max 15)`);
              if (portNames.has(pn)) add(`${cp}.ports[${pi}].name`, `duplicate port name ${pn}`);
              portNames.add(pn);
              ports.set(pn, n as number);
            }
            ports.set(n as number, n as number);
            if (p.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(String(p.protocol))) add(`${cp}.ports[${pi}].protocol`, 'TCP, UDP or SCTP');
          }
          for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
            const pr = c[probe];
            if (!isObj(pr)) continue;
            const handler = (pr.httpGet ?? pr.tcpSocket ?? pr.grpc) as Obj | undefined;
            if (!handler) add(`${cp}.${probe}`, 'needs httpGet, tcpSocket or grpc');
            else if (!ports.has(handler.port as string | number)) add(`${cp}.${probe}.port`, `${String(handler.port)} is not a declared container port`);
          }
          for (const [mi, m] of objs(c.volumeMounts).entries()) {
            if (!volumes.has(String(m.name))) add(`${cp}.volumeMounts[${mi}].name`, `no volume ${String(m.name)}`);
            if (typeof m.mountPath !== 'string' || !m.mountPath.startsWith('/')) add(`${cp}.volumeMounts[${mi}].mountPath`, 'an absolute path is required');
          }
          for (const [ei, e] of objs(c.env).entries()) if (typeof e.name !== 'string' || !/^[-._a-zA-Z][-._a-zA-Z0-9]*$/.test(e.name)) add(`${cp}.env[${ei}].name`, 'invalid variable name');
          const args = arr(c.args);
          for (const [ai, a] of args.entries()) if (typeof a !== 'string') add(`${cp}.args[${ai}]`, `must be a string, got ${typeof a} (quote it)`);
          const known = flags[String(c.name)];
          if (known) {
            for (let ai = 0; ai < args.length; ai += 2) {
              const flag = String(args[ai]);
              if (!known.has(flag)) add(`${cp}.args[${ai}]`, `${flag} is not a flag of ${String(c.name)} (${[...known].join(' ')})`);
              if (ai + 1 >= args.length) add(`${cp}.args[${ai}]`, `${flag} has no value`);
            }
          } else add(`${cp}.name`, `no flag table for container ${String(c.name)}`);
        }
        owners.push({ id, namespace: o.metadata.namespace, labels: isObj(podLabels) ? podLabels : {}, ports });
        break;
      }
      default:
        break;
    }
  }

  // Cross-object references.
  const byKey = new Set(objects.map((o) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`));
  const servicePorts = new Map<string, Set<number>>();
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
    const add = (path: string, msg: string): void => void problems.push(`${id}: ${path}: ${msg}`);
    const spec = isObj(o.spec) ? o.spec : {};
    switch (o.kind) {
      case 'Service': {
        const selected = owners.filter((w) => w.namespace === o.metadata.namespace && matches(spec.selector, w.labels));
        if (selected.length === 0) add('spec.selector', 'selects the pods of no rendered Deployment/DaemonSet');
        const ps = objs(spec.ports);
        if (ps.length === 0) add('spec.ports', 'at least one port is required');
        const numbers = new Set<number>();
        for (const [i, p] of ps.entries()) {
          const port = p.port as number;
          if (!Number.isInteger(port) || port < 1 || port > 65535) add(`spec.ports[${i}].port`, `${String(port)} is not in 1-65535`);
          numbers.add(port);
          if (ps.length > 1 && (typeof p.name !== 'string' || !isDns1123Label(p.name))) add(`spec.ports[${i}].name`, 'required (several ports), a DNS-1123 label');
          const target = (p.targetPort ?? port) as number | string;
          if (selected.length > 0 && !selected.every((w) => w.ports.has(target))) add(`spec.ports[${i}].targetPort`, `${String(target)} is not a container port of the selected pods`);
        }
        if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName', undefined].includes(spec.type as string | undefined)) add('spec.type', `unknown type ${String(spec.type)}`);
        servicePorts.set(`${o.metadata.namespace}/${o.metadata.name}`, numbers);
        break;
      }
      case 'PodDisruptionBudget': {
        const sel = (spec.selector as Obj | undefined)?.matchLabels;
        if (!owners.some((w) => w.namespace === o.metadata.namespace && matches(sel, w.labels))) add('spec.selector', 'selects no rendered workload');
        if ((spec.minAvailable === undefined) === (spec.maxUnavailable === undefined)) add('spec', 'exactly one of minAvailable and maxUnavailable');
        break;
      }
      case 'ClusterRole':
        for (const [i, r] of objs(o.rules).entries()) {
          if (arr(r.verbs).length === 0) add(`rules[${i}].verbs`, 'required');
          if (arr(r.apiGroups).length === 0 || arr(r.resources).length === 0) add(`rules[${i}]`, 'apiGroups and resources are required');
        }
        break;
      case 'ClusterRoleBinding': {
        const ref = o.roleRef as Obj | undefined;
        if (ref?.apiGroup !== 'rbac.authorization.k8s.io' || ref?.kind !== 'ClusterRole' || !byKey.has(`ClusterRole//${String(ref?.name)}`)) add('roleRef', 'must name a rendered ClusterRole');
        for (const [i, s] of objs(o.subjects).entries()) {
          if (s.kind === 'ServiceAccount' && !byKey.has(`ServiceAccount/${String(s.namespace)}/${String(s.name)}`)) add(`subjects[${i}]`, 'names no rendered ServiceAccount');
        }
        break;
      }
      case 'CustomResourceDefinition': {
        const names = spec.names as Obj | undefined;
        if (o.metadata.name !== `${String(names?.plural)}.${String(spec.group)}`) add('metadata.name', 'must be <plural>.<group>');
        if (!['Namespaced', 'Cluster'].includes(String(spec.scope))) add('spec.scope', 'Namespaced or Cluster');
        for (const f of ['kind', 'plural', 'singular', 'listKind']) if (typeof names?.[f] !== 'string') add(`spec.names.${f}`, 'required');
        const versions = objs(spec.versions);
        if (versions.filter((v) => v.storage === true).length !== 1) add('spec.versions', 'exactly one storage version');
        for (const [i, v] of versions.entries()) {
          const schema = ((v.schema as Obj | undefined)?.openAPIV3Schema ?? {}) as Obj;
          if (schema.type !== 'object') add(`spec.versions[${i}].schema.openAPIV3Schema.type`, 'a structural schema has type object at its root');
          const props = (schema.properties ?? {}) as Obj;
          if (!isObj(props.spec) || (props.spec.type !== 'object')) add(`spec.versions[${i}].schema`, 'spec must be an object');
          const cols = objs(v.additionalPrinterColumns);
          if (cols.length === 0) add(`spec.versions[${i}].additionalPrinterColumns`, 'printer columns expected');
          for (const c of cols) if (typeof c.jsonPath !== 'string' || !c.jsonPath.startsWith('.')) add(`spec.versions[${i}].additionalPrinterColumns`, 'jsonPath must start with "."');
        }
        break;
      }
      default:
        break;
    }
  }
  for (const o of objects) {
    if (o.kind !== 'ValidatingWebhookConfiguration') continue;
    const id = `${o.kind}/${o.metadata.name}`;
    for (const [i, w] of objs(o.webhooks).entries()) {
      const add = (path: string, msg: string): void => void problems.push(`${id}: webhooks[${i}].${path}: ${msg}`);
      if (typeof w.name !== 'string' || w.name.split('.').length < 3 || !isDns1123Subdomain(w.name)) add('name', 'a fully qualified name (at least three segments)');
      if (!['None', 'NoneOnDryRun'].includes(String(w.sideEffects))) add('sideEffects', 'None or NoneOnDryRun');
      if (arr(w.admissionReviewVersions).length === 0) add('admissionReviewVersions', 'required');
      if (!['Ignore', 'Fail'].includes(String(w.failurePolicy))) add('failurePolicy', 'Ignore or Fail');
      const svc = (w.clientConfig as Obj | undefined)?.service as Obj | undefined;
      const ports = servicePorts.get(`${String(svc?.namespace)}/${String(svc?.name)}`);
      if (!ports) add('clientConfig.service', 'names no rendered Service');
      else if (!ports.has((svc?.port ?? 443) as number)) add('clientConfig.service.port', 'not a port of that Service');
    }
  }
  return problems;
}
