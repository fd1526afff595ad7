/**
 * AuthorizationPolicy → Envoy RBAC, as Istio builds it (istio/istio pilot/pkg/security/authz/builder and model).
 *
 * Per workload: the applicable policies (policy-selection.ts) are split by action. Each action that has at least
 * one policy becomes one RBAC filter, in Istio's order AUDIT (`LOG`), CUSTOM (no ext_authz providers here: `DENY`
 * of its rules, fail closed, as Istio does for a CUSTOM policy whose provider it cannot find), DENY, ALLOW. Inside a
 * filter every rule of every policy is one named policy `ns[<ns>]-policy[<name>]-rule[<i>]` with
 * `permissions: [{and_rules: …}]` (one per `to`, else `any`) and `principals: [{and_ids: …}]` (one per `from`, else
 * `any`); each field becomes `or_*` of its values and, for `not…` values, `not_*` of the `or_*`. `when` conditions
 * are appended to every permission (destination.*, connection.sni) or principal (everything else).
 *
 * An ALLOW filter with no policies denies everything: an ALLOW policy without rules ("allow-nothing") still creates
 * the filter. A DENY policy without rules denies nothing.
 *
 * TCP (network RBAC on non-HTTP chains): HTTP-only fields (hosts, methods, paths, request principals, request
 * headers, JWT claims) cannot be checked. In an ALLOW policy the whole rule is dropped (it never matches, so it
 * allows less); in DENY/AUDIT/CUSTOM only the field is dropped (the rule matches more, so it denies more) — Istio's
 * fail-closed choice in both directions.
 *
 * Request principals and JWT claims are read from jwt_authn's verified payload (`payload_in_metadata: payload`,
 * see jwt-authn.ts) with metadata matchers on `envoy.filters.http.jwt_authn` — Istio's "extended JWT" form, which
 * stock Envoy understands (the older `istio_authn` filter metadata exists only in Istio's Envoy build).
 */
import { isIP } from 'node:net';
import { EXT_TYPE_URL } from '@trellis/api';
import type { AuthorizationAction, AuthorizationPolicySpec, AuthzSource, Condition, Operation, Rule } from '@trellis/model';
import type { ConfigOf, ProxyNode, Snapshot } from '../snapshot/types.js';
import { policiesFor } from './policy-selection.js';
import {
  cidrRange,
  claimValueMatcher,
  headerMatcher,
  hostMatcher,
  jwtPayloadMatcher,
  pathMatcher,
  quoteMeta,
  regexMatcher,
  stringMatcher,
} from './rbac-matchers.js';

type Obj = Record<string, unknown>;
type AuthorizationPolicy = ConfigOf<'AuthorizationPolicy'>;

export const RBAC_HTTP_FILTER = 'envoy.filters.http.rbac';
export const RBAC_NETWORK_FILTER = 'envoy.filters.network.rbac';
/** Istio's stat prefix of network RBAC filters (`authzmodel.RBACTCPFilterStatPrefix`). */
export const RBAC_TCP_STAT_PREFIX = 'tcp.';
/** Istio's shadow-rules stat prefix, set on every HTTP RBAC filter it generates. */
export const RBAC_SHADOW_STAT_PREFIX = 'istio_dry_run_allow_';

/** Raised for a value that cannot be expressed for this filter (HTTP-only field on TCP, bad port, unknown key). */
class Unsupported extends Error {}

type EnvoyAction = 'ALLOW' | 'DENY' | 'LOG';

/**
 * One attribute of a rule with its values: `gen` makes the Envoy matcher of one value (throws Unsupported when
 * it cannot), or, for the JWT fields Istio handles as a whole (`whole`), of the whole value list at once.
 */
interface Attr {
  readonly values: readonly string[];
  readonly notValues: readonly string[];
  readonly gen?: (v: string) => Obj;
  readonly whole?: (vs: readonly string[]) => Obj;
}

const httpOnly = (forTcp: boolean, f: () => Obj): Obj => {
  if (forTcp) throw new Unsupported('HTTP only');
  return f();
};

/** IP or CIDR → CidrRange; anything else cannot be expressed (Envoy would reject the whole listener). */
function cidr(v: string): Obj {
  const [addr = '', len, extra] = v.split('/');
  const family = isIP(addr);
  const max = family === 6 ? 128 : 32;
  if (family === 0 || extra !== undefined || (len !== undefined && (!/^\d+$/.test(len) || Number(len) > max))) throw new Unsupported(`bad address ${v}`);
  return cidrRange(v);
}

function portNumber(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new Unsupported(`bad port ${v}`);
  return Number(v);
}

/** `request.headers[x-user]` → `x-user`; `request.auth.claims[a][b]` → `[a, b]`. */
function bracketNames(rest: string): string[] {
  const names: string[] = [];
  const re = /\[([^\]]+)\]/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(rest)) !== null) {
    names.push(m[1] ?? '');
    end = re.lastIndex;
  }
  if (names.length === 0 || end !== rest.length) throw new Unsupported(`bad key ${rest}`);
  return names;
}

// --- permissions (what is accessed) -------------------------------------------------------------------------

const perm = {
  host: (forTcp: boolean) => (v: string): Obj => httpOnly(forTcp, () => ({ header: hostMatcher(':authority', v) })),
  method: (forTcp: boolean) => (v: string): Obj => httpOnly(forTcp, () => ({ header: headerMatcher(':method', v) })),
  path: (forTcp: boolean) => (v: string): Obj => httpOnly(forTcp, () => ({ url_path: pathMatcher(v) })),
  port: (v: string): Obj => ({ destination_port: portNumber(v) }),
  destIp: (v: string): Obj => ({ destination_ip: cidr(v) }),
  sni: (v: string): Obj => ({ requested_server_name: stringMatcher(v) }),
};

// --- principals (who asks) ----------------------------------------------------------------------------------

const authenticated = (m: Obj): Obj => ({ authenticated: { principal_name: m } });

/** `iss/sub` (split at the last `/`, issuers are URLs) with Istio's wildcard rules, on jwt_authn's payload. */
function requestPrincipal(value: string): Obj {
  const any = regexMatcher('.+');
  const idx = value.lastIndexOf('/');
  const found = idx >= 0;
  const iss = found ? value.slice(0, idx) : value;
  const sub = found ? value.slice(idx + 1) : '';
  let mIss: Obj;
  let mSub: Obj;
  if (value === '*') {
    mIss = any;
    mSub = any;
  } else if (value.startsWith('*')) {
    if (found) {
      mIss = iss === '*' ? any : { suffix: iss.slice(1) };
      mSub = { exact: sub };
    } else {
      mIss = any;
      mSub = { suffix: value.slice(1) };
    }
  } else if (value.endsWith('*')) {
    if (found) {
      mIss = { exact: iss };
      mSub = sub === '*' ? any : { prefix: sub.slice(0, -1) };
    } else {
      mIss = { prefix: value.slice(0, -1) };
      mSub = any;
    }
  } else {
    mIss = { exact: iss };
    mSub = { exact: sub };
  }
  return {
    and_ids: {
      ids: [
        { metadata: jwtPayloadMatcher(['iss'], { string_match: mIss }) },
        { metadata: jwtPayloadMatcher(['sub'], { string_match: mSub }) },
      ],
    },
  };
}

function requestPrincipals(forTcp: boolean) {
  return (vs: readonly string[]): Obj =>
    httpOnly(forTcp, () => {
      const ids = vs.map(requestPrincipal);
      return ids.length === 1 ? ids[0]! : { or_ids: { ids } };
    });
}

function claim(forTcp: boolean, path: readonly string[]) {
  return (vs: readonly string[]): Obj => httpOnly(forTcp, () => ({ metadata: jwtPayloadMatcher(path, claimValueMatcher(vs)) }));
}

/** Istio's regex for `serviceAccounts` (`<sa>` in the policy's namespace, or `<ns>/<sa>`). */
function serviceAccount(policyNamespace: string) {
  return (v: string): Obj => {
    const i = v.indexOf('/');
    const ns = i < 0 ? policyNamespace : v.slice(0, i);
    const sa = i < 0 ? v : v.slice(i + 1);
    return authenticated(regexMatcher(`spiffe://.+/ns/${quoteMeta(ns)}/(.+/|)sa/${quoteMeta(sa)}(/.+)?`));
  };
}

/** Where a rule is generated: the policy's namespace (short service accounts) and the mesh's trust domain. */
interface RuleContext {
  readonly namespace: string;
  readonly trustDomain: string;
}

/** Istio's default trust domain, which in a policy always means the mesh's own trust domain. */
const CLUSTER_LOCAL = 'cluster.local';

/**
 * `principals` / `source.principal`: `<td>/ns/<ns>/sa/<sa>` with `spiffe://` prepended. Like Istio's trust-domain
 * bundle, a principal naming `cluster.local` means the mesh's trust domain (values starting with `*` are kept).
 */
function principal(ctx: RuleContext) {
  return (v: string): Obj => {
    const i = v.indexOf('/');
    const localized = !v.startsWith('*') && i > 0 && v.slice(0, i) === CLUSTER_LOCAL ? `${ctx.trustDomain}${v.slice(i)}` : v;
    return authenticated(stringMatcher(localized, 'spiffe://'));
  };
}

const princ = {
  namespace: (v: string): Obj => authenticated(regexMatcher(`.*/ns/${v.split('*').map(quoteMeta).join('.*')}/.*`)),
  directRemoteIp: (v: string): Obj => ({ direct_remote_ip: cidr(v) }),
  remoteIp: (v: string): Obj => ({ remote_ip: cidr(v) }),
  header: (forTcp: boolean, name: string) => (v: string): Obj => httpOnly(forTcp, () => ({ header: headerMatcher(name, v) })),
};

const list = (xs: readonly string[] | undefined): readonly string[] => xs ?? [];

/** Permission-side and principal-side attributes of one `when` condition (Istio's attribute keys). */
function conditionAttr(c: Condition, forTcp: boolean, ctx: RuleContext): { side: 'permission' | 'principal'; attr: Attr } {
  const base = { values: list(c.values), notValues: list(c.notValues) };
  const k = c.key;
  switch (k) {
    case 'destination.ip': return { side: 'permission', attr: { ...base, gen: perm.destIp } };
    case 'destination.port': return { side: 'permission', attr: { ...base, gen: perm.port } };
    case 'connection.sni': return { side: 'permission', attr: { ...base, gen: perm.sni } };
    case 'source.ip': return { side: 'principal', attr: { ...base, gen: princ.directRemoteIp } };
    case 'remote.ip': return { side: 'principal', attr: { ...base, gen: princ.remoteIp } };
    case 'source.namespace': return { side: 'principal', attr: { ...base, gen: princ.namespace } };
    case 'source.principal': return { side: 'principal', attr: { ...base, gen: principal(ctx) } };
    case 'source.serviceAccount': return { side: 'principal', attr: { ...base, gen: serviceAccount(ctx.namespace) } };
    case 'request.auth.principal': return { side: 'principal', attr: { ...base, whole: requestPrincipals(forTcp) } };
    case 'request.auth.audiences': return { side: 'principal', attr: { ...base, whole: claim(forTcp, ['aud']) } };
    case 'request.auth.presenter': return { side: 'principal', attr: { ...base, whole: claim(forTcp, ['azp']) } };
  }
  if (k.startsWith('request.headers')) {
    const [name] = bracketNames(k.slice('request.headers'.length));
    return { side: 'principal', attr: { ...base, gen: princ.header(forTcp, name ?? '') } };
  }
  if (k.startsWith('request.auth.claims')) {
    return { side: 'principal', attr: { ...base, whole: claim(forTcp, bracketNames(k.slice('request.auth.claims'.length))) } };
  }
  throw new Unsupported(`unknown attribute ${k}`);
}

function sourceAttrs(s: AuthzSource, forTcp: boolean, ctx: RuleContext): Attr[] {
  return [
    { values: list(s.principals), notValues: list(s.notPrincipals), gen: principal(ctx) },
    { values: list(s.serviceAccounts), notValues: list(s.notServiceAccounts), gen: serviceAccount(ctx.namespace) },
    { values: list(s.requestPrincipals), notValues: list(s.notRequestPrincipals), whole: requestPrincipals(forTcp) },
    { values: list(s.namespaces), notValues: list(s.notNamespaces), gen: princ.namespace },
    { values: list(s.remoteIpBlocks), notValues: list(s.notRemoteIpBlocks), gen: princ.remoteIp },
    { values: list(s.ipBlocks), notValues: list(s.notIpBlocks), gen: princ.directRemoteIp },
  ];
}

function operationAttrs(o: Operation, forTcp: boolean): Attr[] {
  return [
    { values: list(o.hosts), notValues: list(o.notHosts), gen: perm.host(forTcp) },
    { values: list(o.methods), notValues: list(o.notMethods), gen: perm.method(forTcp) },
    { values: list(o.paths), notValues: list(o.notPaths), gen: perm.path(forTcp) },
    { values: list(o.ports), notValues: list(o.notPorts), gen: perm.port },
  ];
}

/**
 * Matchers of one attribute: `[or(values)]`, `[not(or(notValues))]`. A value that cannot be expressed throws for
 * ALLOW (the rule is dropped) and is skipped otherwise (the rule widens).
 */
function attrMatchers(a: Attr, action: EnvoyAction, kind: 'rules' | 'ids'): Obj[] {
  const tolerate = action !== 'ALLOW';
  const or = kind === 'rules' ? (xs: Obj[]): Obj => ({ or_rules: { rules: xs } }) : (xs: Obj[]): Obj => ({ or_ids: { ids: xs } });
  const not = kind === 'rules' ? (x: Obj): Obj => ({ not_rule: x }) : (x: Obj): Obj => ({ not_id: x });
  const out: Obj[] = [];
  const attempt = (f: () => Obj): Obj | undefined => {
    try {
      return f();
    } catch (e) {
      if (e instanceof Unsupported && tolerate) return undefined;
      throw e;
    }
  };
  if (a.whole !== undefined) {
    const whole = a.whole;
    if (a.values.length > 0) {
      const m = attempt(() => whole(a.values));
      if (m !== undefined) out.push(m);
    }
    if (a.notValues.length > 0) {
      const m = attempt(() => whole(a.notValues));
      if (m !== undefined) out.push(not(m));
    }
    return out;
  }
  const gen = a.gen!;
  const values = a.values.map((v) => attempt(() => gen(v))).filter((x): x is Obj => x !== undefined);
  if (values.length > 0) out.push(or(values));
  const notValues = a.notValues.map((v) => attempt(() => gen(v))).filter((x): x is Obj => x !== undefined);
  if (notValues.length > 0) out.push(not(or(notValues)));
  return out;
}

/** One Istio rule → one Envoy RBAC `Policy`; throws Unsupported when an ALLOW rule cannot be expressed. */
function rulePolicy(rule: Rule, ctx: RuleContext, forTcp: boolean, action: EnvoyAction): Obj {
  const basePermission: Attr[] = [];
  const basePrincipal: Attr[] = [];
  for (const c of rule.when ?? []) {
    // An unknown key throws Unsupported for every action: Istio skips such a rule whatever the action.
    const r = conditionAttr(c, forTcp, ctx);
    (r.side === 'permission' ? basePermission : basePrincipal).push(r.attr);
  }
  const principalLists = (rule.from ?? []).length > 0
    ? (rule.from ?? []).map((f) => [...sourceAttrs(f.source, forTcp, ctx), ...basePrincipal])
    : [basePrincipal];
  const permissionLists = (rule.to ?? []).length > 0
    ? (rule.to ?? []).map((t) => [...operationAttrs(t.operation, forTcp), ...basePermission])
    : [basePermission];
  const permissions = permissionLists.map((attrs) => {
    const and = attrs.flatMap((a) => attrMatchers(a, action, 'rules'));
    return { and_rules: { rules: and.length > 0 ? and : [{ any: true }] } };
  });
  const principals = principalLists.map((attrs) => {
    const and = attrs.flatMap((a) => attrMatchers(a, action, 'ids'));
    return { and_ids: { ids: and.length > 0 ? and : [{ any: true }] } };
  });
  return { permissions, principals };
}

function policyName(p: AuthorizationPolicy, i: number): string {
  return `ns[${p.metadata.namespace}]-policy[${p.metadata.name}]-rule[${i}]`;
}

/** Envoy RBAC `rules` (action + named policies) for the policies of one action. */
function rbacRules(policies: readonly AuthorizationPolicy[], action: EnvoyAction, forTcp: boolean, custom: boolean, trustDomain: string): Obj {
  const named: Record<string, Obj> = {};
  for (const p of policies) {
    (p.spec.rules ?? []).forEach((rule, i) => {
      let generated: Obj;
      try {
        generated = rulePolicy(rule, { namespace: p.metadata.namespace, trustDomain }, forTcp, action);
      } catch (e) {
        if (e instanceof Unsupported) return; // Istio: "skipped rule" — the rule never matches.
        throw e;
      }
      const name = custom ? `istio-ext-authz-${policyName(p, i)}-deny-due-to-bad-CUSTOM-action` : policyName(p, i);
      named[name] = generated;
    });
  }
  return { action, policies: named };
}

const ACTIONS: readonly { istio: AuthorizationAction; envoy: EnvoyAction }[] = [
  { istio: 'AUDIT', envoy: 'LOG' },
  { istio: 'CUSTOM', envoy: 'DENY' },
  { istio: 'DENY', envoy: 'DENY' },
  { istio: 'ALLOW', envoy: 'ALLOW' },
];

function byAction(snapshot: Snapshot, proxy: ProxyNode): { envoy: EnvoyAction; custom: boolean; policies: AuthorizationPolicy[] }[] {
  const applicable = policiesFor(snapshot.config.authorizationPolicies, proxy);
  return ACTIONS.map((a) => ({ envoy: a.envoy, custom: a.istio === 'CUSTOM', policies: applicable.filter((p) => (p.spec as AuthorizationPolicySpec).action === a.istio) }))
    .filter((x) => x.policies.length > 0);
}

/** HTTP RBAC filters (`envoy.filters.http.rbac`) for the proxy's workload, in Istio's order; empty when no policy. */
export function httpRbacFilters(snapshot: Snapshot, proxy: ProxyNode): Obj[] {
  return byAction(snapshot, proxy).map((a) => ({
    name: RBAC_HTTP_FILTER,
    typed_config: { '@type': EXT_TYPE_URL.rbacHttp, rules: rbacRules(a.policies, a.envoy, false, a.custom, snapshot.mesh.trustDomain), shadow_rules_stat_prefix: RBAC_SHADOW_STAT_PREFIX },
  }));
}

/** Network RBAC filters (`envoy.filters.network.rbac`) for the proxy's TCP chains; empty when no policy. */
export function networkRbacFilters(snapshot: Snapshot, proxy: ProxyNode): Obj[] {
  return byAction(snapshot, proxy).map((a) => ({
    name: RBAC_NETWORK_FILTER,
    typed_config: { '@type': EXT_TYPE_URL.rbacNetwork, rules: rbacRules(a.policies, a.envoy, true, a.custom, snapshot.mesh.trustDomain), stat_prefix: RBAC_TCP_STAT_PREFIX },
  }));
}
