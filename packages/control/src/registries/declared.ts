/**
 * From `trellis.dev/v1alpha1` Registry resources to adapter plans: which shards to run, with which options.
 *
 * A plan carries a fingerprint of everything that configures its adapter (credentials included, as a hash), so the
 * manager restarts an adapter exactly when its declaration changed. Credentials are read here, from the file or the
 * environment variable the resource names; they go into adapter options and the hash, never into a log line or a
 * problem message.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { TrellisError, type RegistryAdapter, type Resource, type RegistryResource, type SourceKind } from '@trellis/model';

type RegistrySpec = RegistryResource['spec'];
import { ConsulAdapter } from '@trellis/registry-adapters/consul';
import { EurekaAdapter } from '@trellis/registry-adapters/eureka';
import { FileRegistry, parseResourceText } from '@trellis/registry-adapters/file';
import { TrellisAdapter } from '@trellis/registry-adapters';
import {
  IstioConfigSource, KubeHttpClient, KubernetesAdapter, TokenReviewer, inClusterConnection, loadKubeconfig, type KubeConnection,
} from '@trellis/registry-adapters/kubernetes';

/** One adapter instance to run: one shard of the mesh. */
export interface AdapterPlan {
  /** The shard id (`consul:<dc>`, `eureka:<name>`, `kubernetes:<clusterId>`, `kubernetes:<clusterId>/istio`, `file:<dir>`). */
  readonly shard: string;
  readonly kind: SourceKind;
  /** `Registry/<namespace>/<name>` that declared it. */
  readonly declaredBy: string;
  /** Explicit merge rank (the resource's `priority`), lower wins. */
  readonly rank?: number;
  /** Changes whenever the adapter must be restarted. */
  readonly fingerprint: string;
  /** Builds the adapter (called when the shard starts or restarts). */
  create(): RegistryAdapter;
  /** Kubernetes shards only: a TokenReview client for the CA's service-account authenticator. */
  tokenReviewer?(): TokenReviewer;
}

/** A Registry resource that could not be turned into adapters (the message never holds a credential). */
export interface PlanProblem {
  readonly declaredBy: string;
  readonly shard?: string;
  readonly message: string;
}

export interface PlanEnvironment {
  readonly env: NodeJS.ProcessEnv;
  /** Relative `credentials.tokenFile`, `kubeconfig` and `path` are resolved against this directory. */
  readonly baseDir: string;
  readonly readFile?: (path: string) => string;
}

export interface Plans {
  readonly plans: readonly AdapterPlan[];
  readonly problems: readonly PlanProblem[];
}

function token(spec: RegistrySpec, env: PlanEnvironment): string | undefined {
  const c = spec.credentials;
  if (!c) return undefined;
  if (c.tokenEnv !== undefined) {
    const v = env.env[c.tokenEnv];
    if (v === undefined || v === '') throw new Error(`credentials.tokenEnv: environment variable ${c.tokenEnv} is not set`);
    return v.trim();
  }
  if (c.tokenFile !== undefined) {
    const file = isAbsolute(c.tokenFile) ? c.tokenFile : resolve(env.baseDir, c.tokenFile);
    try {
      return (env.readFile ?? ((p: string) => readFileSync(p, 'utf8')))(file).trim();
    } catch (cause) {
      throw new Error(`credentials.tokenFile: cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return undefined;
}

const hash = (v: unknown): string => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);

/** Eureka's `authorization` header: a token that names its scheme (`Basic …`) is used as is, else it is a bearer token. */
function authorization(t: string): string {
  return /^[A-Za-z]+ \S/.test(t) ? t : `Bearer ${t}`;
}

function kubeConnection(spec: RegistrySpec, tok: string | undefined, env: PlanEnvironment): KubeConnection {
  if (spec.address !== undefined || spec.addresses !== undefined) {
    return { server: spec.address ?? spec.addresses![0], ...(tok !== undefined ? { token: tok } : {}) };
  }
  const base = spec.kubeconfig !== undefined
    ? loadKubeconfig(isAbsolute(spec.kubeconfig) ? spec.kubeconfig : resolve(env.baseDir, spec.kubeconfig))
    : inClusterConnection(undefined, env.env);
  return tok !== undefined ? { ...base, token: tok, tokenFile: undefined } : base;
}

function plansOf(r: RegistryResource, env: PlanEnvironment): AdapterPlan[] {
  const spec = r.spec;
  const declaredBy = `Registry/${r.metadata.namespace}/${r.metadata.name}`;
  const tok = token(spec, env);
  const rank = spec.priority;
  const common = { declaredBy, ...(rank !== undefined ? { rank } : {}) };
  const fp = (extra: unknown): string => hash({ spec: { ...spec, credentials: undefined }, token: tok === undefined ? null : hash(tok), extra });
  switch (spec.type) {
    case 'consul': {
      const address = spec.address ?? spec.addresses![0];
      const dcs = spec.datacenters && spec.datacenters.length > 0 ? spec.datacenters : [undefined];
      return dcs.map((dc) => {
        const options = {
          address,
          ...(dc !== undefined ? { datacenter: dc } : {}),
          ...(tok !== undefined ? { token: tok } : {}),
          ...(spec.namespace !== undefined ? { namespace: spec.namespace } : {}),
          ...(spec.hostnameTemplate !== undefined ? { hostnameTemplate: spec.hostnameTemplate } : {}),
          ...(spec.network !== undefined ? { network: spec.network } : {}),
          includeWarning: spec.healthFilter === 'warning',
        };
        const shard = new ConsulAdapter(options).shard;
        return { ...common, shard, kind: 'consul' as const, fingerprint: fp(dc), create: () => new ConsulAdapter(options) };
      });
    }
    case 'eureka': {
      const options = {
        serviceUrls: spec.addresses ?? [spec.address!],
        name: r.metadata.name,
        ...(spec.deltaInterval !== undefined ? { deltaIntervalMs: spec.deltaInterval } : {}),
        ...(spec.namespace !== undefined ? { namespace: spec.namespace } : {}),
        ...(spec.hostnameTemplate !== undefined ? { hostnameTemplate: spec.hostnameTemplate } : {}),
        ...(tok !== undefined ? { headers: { authorization: authorization(tok) } } : {}),
      };
      return [{ ...common, shard: `eureka:${r.metadata.name}`, kind: 'eureka', fingerprint: fp(null), create: () => new EurekaAdapter(options) }];
    }
    case 'kubernetes': {
      const connection = kubeConnection(spec, tok, env);
      const clusterId = spec.clusterId ?? r.metadata.name;
      const kubeFp = fp(hash(connection));
      return [
        {
          ...common, shard: `kubernetes:${clusterId}`, kind: 'kubernetes', fingerprint: kubeFp,
          create: () => new KubernetesAdapter({ clusterId, connection, ...(spec.network !== undefined ? { network: spec.network } : {}) }),
          tokenReviewer: () => new TokenReviewer(new KubeHttpClient(connection, { timeoutMs: 5000 })),
        },
        {
          ...common, shard: `kubernetes:${clusterId}/istio`, kind: 'kubernetes', fingerprint: kubeFp,
          create: () => new IstioConfigSource({ clusterId, connection }),
        },
      ];
    }
    case 'trellis': {
      const name = spec.clusterId ?? r.metadata.name;
      let caPem: string | undefined;
      if (spec.caBundle !== undefined) {
        const file = isAbsolute(spec.caBundle) ? spec.caBundle : resolve(env.baseDir, spec.caBundle);
        try {
          caPem = (env.readFile ?? ((p: string) => readFileSync(p, 'utf8')))(file);
        } catch (cause) {
          throw new Error(`caBundle: cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`);
        }
      }
      const options = {
        address: spec.address ?? spec.addresses![0], name,
        ...(spec.network !== undefined ? { network: spec.network } : {}),
        ...(caPem !== undefined ? { caPem } : {}),
        ...(tok !== undefined ? { token: tok } : {}),
      };
      return [{ ...common, shard: `trellis:${name}`, kind: 'trellis', fingerprint: fp(hash(caPem ?? null)), create: () => new TrellisAdapter(options) }];
    }
    case 'file': {
      const dir = isAbsolute(spec.path!) ? spec.path! : resolve(env.baseDir, spec.path!);
      return [{ ...common, shard: `file:${dir}`, kind: 'file', fingerprint: fp(dir), create: () => new FileRegistry({ dir }) }];
    }
  }
}

/**
 * Plans for every Registry resource among `resources` (other kinds are ignored). A resource whose credentials or
 * kubeconfig cannot be read, or whose shard id another resource already took, becomes a problem instead.
 */
export function planRegistries(resources: readonly { readonly kind: string }[], env: PlanEnvironment): Plans {
  const regs = (resources.filter((r) => r.kind === 'Registry') as RegistryResource[])
    .slice()
    .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  const plans: AdapterPlan[] = [];
  const problems: PlanProblem[] = [];
  const taken = new Map<string, string>();
  for (const r of regs) {
    const declaredBy = `Registry/${r.metadata.namespace}/${r.metadata.name}`;
    let ps: AdapterPlan[];
    try {
      ps = plansOf(r, env);
    } catch (err) {
      problems.push({ declaredBy, message: (err as Error).message });
      continue;
    }
    for (const p of ps) {
      const other = taken.get(p.shard);
      if (other !== undefined) {
        problems.push({ declaredBy, shard: p.shard, message: `shard ${p.shard} is already declared by ${other}` });
        continue;
      }
      taken.set(p.shard, declaredBy);
      plans.push(Object.freeze(p));
    }
  }
  return Object.freeze({ plans: Object.freeze(plans), problems: Object.freeze(problems) });
}

/**
 * The Registry resources of a `--mesh-config` file (the file may hold them beside its MeshConfig). A document that
 * does not decode is an error naming the file and line, like the MeshConfig itself.
 */
export function registryDeclarations(file: string, readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): readonly Resource[] {
  let text: string;
  try {
    text = readFile(file);
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_MESH_CONFIG', `--mesh-config ${file}: ${(cause as Error).message}`, { cause });
  }
  const parsed = parseResourceText(text, file, { source: { kind: 'control', shard: 'mesh-config' } });
  if (parsed.problems.length > 0) {
    const p = parsed.problems[0];
    throw new TrellisError('TRELLIS_ERR_MESH_CONFIG', `${file}${p.line ? `:${p.line}` : ''}: ${p.path ? `${p.path}: ` : ''}${p.message}`);
  }
  return parsed.resources.filter((r) => r.kind === 'Registry');
}
