/** `trellis.dev/v1alpha1` Registry: one service registry the control plane reads (an adapter instance). */
import { arrayOf, duration, enumOf, int, obj, required, str, strings, type Schema } from '../decode/schema.js';
import { joinKey } from '../decode/violations.js';
import { checkDnsLabel } from '../decode/syntax.js';
import { REGISTRY_TYPES, type RegistryType } from './mesh-config.js';

export interface RegistryCredentials {
  /** File holding a token (Consul ACL token, bearer token); read at start and on change. */
  readonly tokenFile?: string;
  /** Environment variable holding the token. */
  readonly tokenEnv?: string;
}

export interface RegistrySpec {
  readonly type: RegistryType;
  /** Base URL or `host:port` of the registry (Consul agent, Eureka server, Kubernetes API). */
  readonly address?: string;
  /** Several addresses, tried in order. Exclusive with `address`. */
  readonly addresses?: readonly string[];
  readonly credentials?: RegistryCredentials;
  /** Rank among registries; lower wins. Absent: the rank of `type` in MeshConfig.registryPriority. */
  readonly priority?: number;
  /**
   * Hostname given to each service, with `{service}`, `{namespace}`, `{datacenter}` (consul) and `{app}` (eureka)
   * placeholders, e.g. `{service}.service.consul`.
   */
  readonly hostnameTemplate?: string;
  /** Namespace the registry's services are placed in. */
  readonly namespace?: string;
  /** consul only: datacenters to read; absent means the agent's own. */
  readonly datacenters?: readonly string[];
  /** Network of this registry's workloads. */
  readonly network?: string;
  readonly clusterId?: string;
  /** consul only: which health states count as healthy. Default `passing` for consul. */
  readonly healthFilter?: 'passing' | 'warning';
  /** eureka only: milliseconds between delta fetches. Default 30000 (30s) for eureka. */
  readonly deltaInterval?: number;
  /** kubernetes only: path of a kubeconfig file; absent means in-cluster config. */
  readonly kubeconfig?: string;
  /** file only: directory (or file) to watch. */
  readonly path?: string;
  /** trellis only: PEM file of the roots that verify an `https://` address (default: the system's roots). */
  readonly caBundle?: string;
}

const ONLY_FOR: Record<string, RegistryType> = {
  datacenters: 'consul',
  healthFilter: 'consul',
  deltaInterval: 'eureka',
  kubeconfig: 'kubernetes',
  path: 'file',
  caBundle: 'trellis',
};

export const registrySpec = (): Schema<RegistrySpec> =>
  obj<RegistrySpec>(
    {
      type: required(enumOf(REGISTRY_TYPES, { what: 'registry type' })),
      address: str((a) => (a === '' ? 'must not be empty' : undefined)),
      addresses: arrayOf(str(), { min: 1 }),
      credentials: obj<RegistryCredentials>({ tokenFile: str(), tokenEnv: str() }, { exactlyOne: [['tokenFile', 'tokenEnv']] }),
      priority: int({ min: 0 }),
      hostnameTemplate: str((t) => (t.includes('{') ? undefined : 'must contain a placeholder such as `{service}`')),
      namespace: str(checkDnsLabel),
      datacenters: strings(),
      network: str(),
      clusterId: str(),
      healthFilter: enumOf(['passing', 'warning'] as const, { what: 'health filter' }),
      deltaInterval: duration({ min: 1 }),
      kubeconfig: str(),
      path: str(),
      caBundle: str(),
    },
    {
      oneOf: [['address', 'addresses']],
      check(r, path, cx) {
        for (const [field, only] of Object.entries(ONLY_FOR)) {
          if ((r as unknown as Record<string, unknown>)[field] !== undefined && r.type !== only) {
            cx.add(joinKey(path, field), `applies only to type ${only}, not ${r.type}`);
          }
        }
        if ((r.type === 'consul' || r.type === 'eureka' || r.type === 'trellis') && r.address === undefined && r.addresses === undefined) {
          cx.add(joinKey(path, 'address'), `required field is missing (type ${r.type} needs an address)`);
        }
        if (r.type === 'file' && r.path === undefined) cx.add(joinKey(path, 'path'), 'required field is missing (type file needs a path)');
      },
      normalize(r) {
        if (r.type === 'consul' && r.healthFilter === undefined) return { ...r, healthFilter: 'passing' };
        if (r.type === 'eureka' && r.deltaInterval === undefined) return { ...r, deltaInterval: 30_000 };
        return r;
      },
    },
  );
