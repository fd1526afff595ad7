/** `security.istio.io` AuthorizationPolicy (istio/api security/v1beta1/authorization.proto). */
import { arrayOf, enumOf, obj, required, str, strings, withDefault, type Schema } from '../decode/schema.js';
import { joinKey } from '../decode/violations.js';
import { checkIpOrCidr } from '../decode/syntax.js';
import { matchLabelsSelector, policyTargetReference, type MatchLabelsSelector, type PolicyTargetReference } from './common.js';

/** The `source` of a rule (`Source` in the proto; renamed here because the hub model already has a `Source`). */
export interface AuthzSource {
  /** Peer identities, `<trust-domain>/ns/<namespace>/sa/<service-account>`; `*` matches any. */
  readonly principals?: readonly string[];
  readonly notPrincipals?: readonly string[];
  /** `<iss>/<sub>` of request JWTs. */
  readonly requestPrincipals?: readonly string[];
  readonly notRequestPrincipals?: readonly string[];
  readonly namespaces?: readonly string[];
  readonly notNamespaces?: readonly string[];
  readonly ipBlocks?: readonly string[];
  readonly notIpBlocks?: readonly string[];
  readonly remoteIpBlocks?: readonly string[];
  readonly notRemoteIpBlocks?: readonly string[];
  readonly serviceAccounts?: readonly string[];
  readonly notServiceAccounts?: readonly string[];
}
export interface Operation {
  readonly hosts?: readonly string[];
  readonly notHosts?: readonly string[];
  /** Port numbers as strings, e.g. `"8080"`. */
  readonly ports?: readonly string[];
  readonly notPorts?: readonly string[];
  readonly methods?: readonly string[];
  readonly notMethods?: readonly string[];
  readonly paths?: readonly string[];
  readonly notPaths?: readonly string[];
}
export interface Condition {
  /** e.g. `request.headers[version]`, `source.ip`, `request.auth.claims[iss]`. */
  readonly key: string;
  readonly values?: readonly string[];
  readonly notValues?: readonly string[];
}
export interface RuleFrom {
  readonly source: AuthzSource;
}
export interface RuleTo {
  readonly operation: Operation;
}
export interface Rule {
  readonly from?: readonly RuleFrom[];
  readonly to?: readonly RuleTo[];
  readonly when?: readonly Condition[];
}
export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';
export interface ExtensionProvider {
  readonly name: string;
}
export interface AuthorizationPolicySpec {
  readonly selector?: MatchLabelsSelector;
  readonly targetRef?: PolicyTargetReference;
  readonly targetRefs?: readonly PolicyTargetReference[];
  readonly rules?: readonly Rule[];
  /** Default ALLOW (Istio's default). */
  readonly action: AuthorizationAction;
  /** Required with action CUSTOM, and only then. */
  readonly provider?: ExtensionProvider;
}

const portString = (p: string): string | undefined =>
  /^\d+$/.test(p) && Number(p) <= 65535 ? undefined : `invalid port \`${p}\`: expected a port number 0-65535 as a string`;
const nonEmptyList = <T extends object>(v: T, path: string, add: (p: string, m: string) => void, what: string): void => {
  if (Object.values(v).every((x) => x === undefined || (Array.isArray(x) && x.length === 0))) add(path, `\`${what}\` must not be empty`);
};

const source = (): Schema<AuthzSource> =>
  obj<AuthzSource>(
    {
      principals: strings(),
      notPrincipals: strings(),
      requestPrincipals: strings(),
      notRequestPrincipals: strings(),
      namespaces: strings(),
      notNamespaces: strings(),
      ipBlocks: strings(checkIpOrCidr),
      notIpBlocks: strings(checkIpOrCidr),
      remoteIpBlocks: strings(checkIpOrCidr),
      notRemoteIpBlocks: strings(checkIpOrCidr),
      serviceAccounts: strings(),
      notServiceAccounts: strings(),
    },
    { check: (s, path, cx) => nonEmptyList(s, path, (p, m) => cx.add(p, m), 'source') },
  );
const operation = (): Schema<Operation> =>
  obj<Operation>(
    {
      hosts: strings(),
      notHosts: strings(),
      ports: strings(portString),
      notPorts: strings(portString),
      methods: strings(),
      notMethods: strings(),
      paths: strings(),
      notPaths: strings(),
    },
    { check: (o, path, cx) => nonEmptyList(o, path, (p, m) => cx.add(p, m), 'operation') },
  );

export const authorizationPolicySpec = (): Schema<AuthorizationPolicySpec> =>
  obj<AuthorizationPolicySpec>(
    {
      selector: matchLabelsSelector(),
      targetRef: policyTargetReference(),
      targetRefs: arrayOf(policyTargetReference()),
      rules: arrayOf(
        obj<Rule>({
          from: arrayOf(obj<RuleFrom>({ source: required(source()) })),
          to: arrayOf(obj<RuleTo>({ operation: required(operation()) })),
          when: arrayOf(
            obj<Condition>(
              { key: required(str((k) => (k === '' ? 'must not be empty' : undefined))), values: strings(), notValues: strings() },
              {
                check(c, path, cx) {
                  if ((c.values ?? []).length === 0 && (c.notValues ?? []).length === 0) {
                    cx.add(path, `at least one of \`values\` or \`notValues\` must be set for key ${c.key}`);
                  }
                },
              },
            ),
          ),
        }),
      ),
      action: withDefault(enumOf<AuthorizationAction>(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'], { what: 'action' }), 'ALLOW'),
      provider: obj<ExtensionProvider>({ name: required(str()) }),
    },
    {
      oneOf: [['selector', 'targetRef', 'targetRefs']],
      check(ap, path, cx) {
        if (ap.action === 'CUSTOM' && ap.provider === undefined) cx.add(joinKey(path, 'provider'), 'required field is missing (action CUSTOM needs a provider)');
        if (ap.action !== 'CUSTOM' && ap.provider !== undefined) cx.add(joinKey(path, 'provider'), `must not be set with action ${ap.action}`);
      },
    },
  );
