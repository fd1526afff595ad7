/**
 * Messages shared by several Istio kinds (istio/api `networking/v1alpha3/*.proto`, `type/v1beta1/selector.proto`).
 */
import type { Protocol } from '../hub.js';
import {
  arrayOf, enumOf, int, labels, obj, port, required, str, stringMap, type Schema,
} from '../decode/schema.js';
import { checkDnsLabel, checkHost, checkIpOrCidr } from '../decode/syntax.js';

/** Istio's port protocols, upper-cased. `GRPC-WEB`/`grpc-web` are accepted for `GRPC_WEB`. */
export const PROTOCOLS: readonly Protocol[] = ['HTTP', 'HTTPS', 'GRPC', 'GRPC_WEB', 'HTTP2', 'MONGO', 'MYSQL', 'REDIS', 'TCP', 'TLS', 'UDP'];

export const protocol = (): Schema<Protocol> =>
  enumOf(PROTOCOLS, { caseInsensitive: true, aliases: { 'GRPC-WEB': 'GRPC_WEB' }, what: 'protocol' });

/** Port-name prefixes Istio reads a protocol from (`http-web`, `grpc`, `tcp-db`), longest first. */
const NAME_PREFIXES: readonly [string, Protocol][] = [
  ['grpc-web', 'GRPC_WEB'], ['http2', 'HTTP2'], ['https', 'HTTPS'], ['http', 'HTTP'], ['grpc', 'GRPC'],
  ['mongo', 'MONGO'], ['mysql', 'MYSQL'], ['redis', 'REDIS'], ['tcp', 'TCP'], ['tls', 'TLS'], ['udp', 'UDP'],
];

/** The protocol a port name declares (`http-foo` → HTTP), or TCP when it declares none, as Istio treats it. */
export function protocolFromPortName(name: string | undefined): Protocol {
  if (name === undefined) return 'TCP';
  const lower = name.toLowerCase();
  for (const [prefix, p] of NAME_PREFIXES) if (lower === prefix || lower.startsWith(`${prefix}-`)) return p;
  return 'TCP';
}

/**
 * `Port` / `ServicePort` / `SidecarPort`. `protocol` is always set after decoding: when the document gives none it
 * is derived from the name prefix, and TCP when the name has no known prefix.
 */
export interface PortSpec {
  readonly number: number;
  readonly protocol: Protocol;
  readonly name?: string;
  /** Port on the endpoints, when it differs from `number`. */
  readonly targetPort?: number;
}

export function portSpec(opts: { nameRequired: boolean; numberRequired?: boolean }): Schema<PortSpec> {
  return obj<PortSpec>(
    {
      number: opts.numberRequired === false ? port() : required(port()),
      protocol: protocol(),
      name: opts.nameRequired ? required(str()) : str(),
      targetPort: port(),
    },
    { normalize: (p) => (p.protocol !== undefined ? p : { ...p, protocol: protocolFromPortName(p.name) }) },
  );
}

/** `PortSelector`: a port by number. */
export interface PortSelector {
  readonly number: number;
}
export const portSelector = (): Schema<PortSelector> => obj<PortSelector>({ number: required(port()) });

/** `Destination`: a service host (short names like `reviews` allowed), optional subset and port. */
export interface Destination {
  readonly host: string;
  readonly subset?: string;
  readonly port?: PortSelector;
}
export const destination = (): Schema<Destination> =>
  obj<Destination>({
    host: required(str((h) => checkHost(h, { bareWildcard: false }))),
    subset: str((n) => checkDnsLabel(n)?.replace('invalid name', 'invalid subset name')),
    port: portSelector(),
  });

/** `WorkloadSelector` of networking kinds: `{labels: {...}}`. */
export interface WorkloadSelector {
  readonly labels: Readonly<Record<string, string>>;
}
export const workloadSelector = (): Schema<WorkloadSelector> => obj<WorkloadSelector>({ labels: required(labels()) });

/** `istio.type.v1beta1.WorkloadSelector` of security kinds: `{matchLabels: {...}}`. */
export interface MatchLabelsSelector {
  readonly matchLabels: Readonly<Record<string, string>>;
}
export const matchLabelsSelector = (): Schema<MatchLabelsSelector> => obj<MatchLabelsSelector>({ matchLabels: required(labels()) });

/** `istio.type.v1beta1.PolicyTargetReference`. */
export interface PolicyTargetReference {
  readonly group?: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}
export const policyTargetReference = (): Schema<PolicyTargetReference> =>
  obj<PolicyTargetReference>({ group: str(), kind: required(str()), name: required(str()), namespace: str() });

export const ipOrCidr = (): Schema<string> => str(checkIpOrCidr);

/** `exportTo`: `.` (this namespace), `*` (all), `~` (none) or namespace names. */
export const exportTo = (): Schema<readonly string[]> =>
  arrayOf(str((s) => (s === '.' || s === '*' || s === '~' || /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s) ? undefined : `invalid exportTo value \`${s}\`: expected \`.\`, \`*\`, \`~\` or a namespace name`)));

/** `Headers.HeaderOperations`. */
export interface HeaderOperations {
  readonly set?: Readonly<Record<string, string>>;
  readonly add?: Readonly<Record<string, string>>;
  readonly remove?: readonly string[];
}
const headerName = (k: string): string | undefined =>
  /^[!#$%&'*+\-.^_`|~0-9A-Za-z:]+$/.test(k) ? undefined : `invalid header name \`${k}\``;
export const headerOperations = (): Schema<HeaderOperations> =>
  obj<HeaderOperations>({ set: stringMap(headerName), add: stringMap(headerName), remove: arrayOf(str(headerName)) });

/** `Headers`: manipulations of the request and the response. */
export interface Headers {
  readonly request?: HeaderOperations;
  readonly response?: HeaderOperations;
}
export const headers = (): Schema<Headers> => obj<Headers>({ request: headerOperations(), response: headerOperations() });

export const uint = (): Schema<number> => int({ min: 0 });
