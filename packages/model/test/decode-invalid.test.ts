import { expect } from 'chai';
import { decodeResource, formatViolation, isKind } from '@trellis/model';

const NET = 'networking.istio.io/v1';
const SEC = 'security.istio.io/v1';
const TRELLIS = 'trellis.dev/v1alpha1';

const doc = (apiVersion: string, kind: string, spec: unknown, name = 'x'): Record<string, unknown> => ({ apiVersion, kind, metadata: { name }, spec });
const vs = (spec: unknown): Record<string, unknown> => doc(NET, 'VirtualService', spec);
const dr = (spec: unknown): Record<string, unknown> => doc(NET, 'DestinationRule', spec);
const se = (spec: unknown): Record<string, unknown> => doc(NET, 'ServiceEntry', spec);
const gw = (spec: unknown): Record<string, unknown> => doc(NET, 'Gateway', spec);
const route = (...r: unknown[]): unknown => ({ hosts: ['reviews'], http: [{ route: r }] });
const dest = (host: string, subset?: string, weight?: number): unknown => ({ destination: { host, ...(subset ? { subset } : {}) }, ...(weight !== undefined ? { weight } : {}) });
const http = (h: Record<string, unknown>): unknown => ({ hosts: ['reviews'], http: [{ route: [dest('reviews')], ...h }] });
const server = (s: Record<string, unknown>): unknown => ({ servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'], ...s }] });
const tp = (t: unknown): unknown => ({ host: 'reviews', trafficPolicy: t });

/** [description, document, expected violations as `path: message`]. */
const CASES: [string, unknown, string[]][] = [
  // envelope
  ['not an object', 'hello', ['expected a resource (an object with apiVersion, kind, metadata and spec), got a string']],
  ['unsupported version', { ...vs(route(dest('reviews'))), apiVersion: 'networking.istio.io/v2' }, ['apiVersion: unsupported version networking.istio.io/v2; expected one of v1, v1beta1, v1alpha3']],
  ['unknown group', { ...vs(route(dest('reviews'))), apiVersion: 'networking.example.com/v1' }, ['apiVersion: unsupported API group `networking.example.com`; expected one of networking.istio.io, security.istio.io, trellis.dev']],
  ['apiVersion without group', { ...vs(route(dest('reviews'))), apiVersion: 'v1' }, ['apiVersion: invalid apiVersion `v1`: expected group/version, like networking.istio.io/v1']],
  ['kind in the wrong group', { ...vs(route(dest('reviews'))), apiVersion: 'security.istio.io/v1' }, ['apiVersion: kind VirtualService is not in API group security.istio.io; use networking.istio.io/v1']],
  ['misspelled kind', { ...vs(route(dest('reviews'))), kind: 'VirtualServce' }, ['kind: unsupported kind `VirtualServce`; did you mean `VirtualService`?']],
  ['missing kind', { apiVersion: NET, metadata: { name: 'x' }, spec: {} }, ['kind: required field is missing']],
  ['missing metadata', { apiVersion: NET, kind: 'Gateway', spec: server({}) }, ['metadata: required field is missing']],
  ['missing name', { apiVersion: NET, kind: 'Gateway', metadata: { namespace: 'default' }, spec: server({}) }, ['metadata.name: required field is missing']],
  ['bad name', doc(NET, 'Gateway', server({}), 'My_Gateway'), ["metadata.name: invalid name `My_Gateway`: must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)"]],
  ['bad namespace', { apiVersion: NET, kind: 'Gateway', metadata: { name: 'g', namespace: 'Prod' }, spec: server({}) }, ["metadata.namespace: invalid namespace `Prod`: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)"]],
  ['bad label key', { apiVersion: NET, kind: 'Gateway', metadata: { name: 'g', labels: { 'app/x/y': 'a' } }, spec: server({}) }, ["metadata.labels[\"app/x/y\"]: invalid label key `app/x/y`: name must be 1-63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"]],
  ['unknown top-level field', { ...vs(route(dest('reviews'))), specs: {} }, ['specs: unknown field `specs`; did you mean `spec`?']],
  ['missing spec', { apiVersion: NET, kind: 'VirtualService', metadata: { name: 'x' } }, ['spec: required field is missing']],
  // VirtualService
  ['misspelled subset', vs({ hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subsett: 'v1' } }] }] }), ['spec.http[0].route[0].destination.subsett: unknown field `subsett`; did you mean `subset`?']],
  ['weights do not sum to 100', vs(route(dest('reviews', 'v1', 50), dest('reviews', 'v2', 40))), ['spec.http[0].route: total destination weight 90 != 100']],
  ['weight over 100', vs(route(dest('reviews', 'v1', 150), dest('reviews', 'v2', 0))), ['spec.http[0].route[0].weight: must be between 0 and 100, got 150']],
  ['negative weight', vs(route(dest('reviews', 'v1', -1), dest('reviews', 'v2', 100))), ['spec.http[0].route[0].weight: must be between 0 and 100, got -1']],
  ['weight not a number', vs(route(dest('reviews', 'v1', '50' as unknown as number))), ['spec.http[0].route[0].weight: expected an integer, got a string']],
  ['tcp weights', vs({ hosts: ['db'], tcp: [{ route: [dest('db', 'a', 30), dest('db', 'b', 30)] }] }), ['spec.tcp[0].route: total destination weight 60 != 100']],
  ['missing destination host', vs({ hosts: ['reviews'], http: [{ route: [{ destination: { subset: 'v1' } }] }] }), ['spec.http[0].route[0].destination.host: required field is missing']],
  ['bad host', vs({ hosts: ['-bad-.com'], http: [{ route: [dest('reviews')] }] }), ["spec.hosts[0]: invalid host `-bad-.com`: each dot-separated label must be 1-63 letters, digits or '-', not starting or ending with '-'"]],
  ['wildcard in the middle', vs({ hosts: ['foo.*.com'], http: [{ route: [dest('reviews')] }] }), ['spec.hosts[0]: invalid host `foo.*.com`: a wildcard is only allowed as the whole first label (`*.example.com`)']],
  ['duration without unit', vs(http({ timeout: '5' })), ['spec.http[0].timeout: invalid duration `5`: missing unit; use a number with a unit: ns, us, ms, s, m or h, like 1.5s, 500ms, 1m']],
  ['negative duration', vs(http({ timeout: '-1s' })), ['spec.http[0].timeout: invalid duration `-1s`: must not be negative']],
  ['duration as a number', vs(http({ timeout: 5 })), ['spec.http[0].timeout: expected a duration string like 1.5s, 500ms or 1m, got a number (5); write it with a unit, like `5s` or `5ms`']],
  ['garbage duration', vs(http({ timeout: '1 minute' })), ['spec.http[0].timeout: invalid duration `1 minute`: use a number with a unit: ns, us, ms, s, m or h, like 1.5s, 500ms, 1m']],
  ['perTryTimeout below 1ms', vs(http({ retries: { attempts: 3, perTryTimeout: '0s' } })), ['spec.http[0].retries.perTryTimeout: duration must be at least 1ms, got `0s`']],
  ['retries without attempts', vs(http({ retries: { perTryTimeout: '1s' } })), ['spec.http[0].retries: retry policy configured while `attempts` is 0 (retries disabled)']],
  ['bad gateway reference', vs({ hosts: ['a.com'], gateways: ['istio-system/Gateway_1'], http: [{ route: [dest('a')] }] }), ['spec.gateways[0]: invalid gateway name `Gateway_1` in `istio-system/Gateway_1`']],
  ['duplicate hosts', vs({ hosts: ['*.foo.com', 'bar.foo.com'], http: [{ route: [dest('a')] }] }), ['spec.hosts[1]: duplicate hosts in virtual service: *.foo.com & bar.foo.com']],
  ['delegate bound only to mesh', vs({ hosts: ['a.com'], http: [{ delegate: { name: 'b' } }] }), ['spec.http[0].delegate: delegation applies only to VirtualServices bound to a gateway (not only `mesh`)']],
  ['SNI host outside the VS hosts', vs({ hosts: ['*.api.company.com'], tls: [{ match: [{ sniHosts: ['example.other.com'] }], route: [dest('a')] }] }), ['spec.tls[0].match[0].sniHosts[0]: SNI host `example.other.com` is not covered by any of the VirtualService hosts: [*.api.company.com]']],
  ['empty redirect', vs({ hosts: ['a.com'], http: [{ redirect: { redirectCode: 302 } }] }), ['spec.http[0].redirect: redirect must specify `uri`, `authority`, `scheme` or a port']],
  ['redirect code not 3xx', vs({ hosts: ['a.com'], http: [{ redirect: { uri: '/b', redirectCode: 200 } }] }), ['spec.http[0].redirect.redirectCode: must be between 300 and 399, got 200']],
  ['unsupported CORS method', vs(http({ corsPolicy: { allowMethods: ['GET', 'FETCH'] } })), ['spec.http[0].corsPolicy.allowMethods[1]: `FETCH` is not a supported HTTP method']],
  ['subset name in destination', vs(route(dest('reviews', 'V_1'))), ["spec.http[0].route[0].destination.subset: invalid subset name `V_1`: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)"]],
  ['CIDR with DNS resolution', se({ hosts: ['a.com'], addresses: ['10.0.0.0/24'], resolution: 'DNS' }), ['spec.addresses[0]: CIDR addresses are allowed only with resolution NONE or STATIC, not DNS']],
  ['several hosts on a TCP port', se({ hosts: ['a.com', 'b.com'], ports: [{ number: 5432, name: 'tcp-pg' }], resolution: 'DNS' }), ['spec.hosts: multiple hosts need HTTP or TLS ports with resolution DNS: a TCP port cannot tell the hosts apart']],
  ['unix endpoint with ports', se({ hosts: ['a.com'], ports: [{ number: 80, name: 'http' }], resolution: 'STATIC', endpoints: [{ address: 'unix:///var/run/a.sock', ports: { http: 80 } }] }), ['spec.endpoints[0].ports: unix endpoint unix:///var/run/a.sock must not include ports']],
  ['locality failover to itself', dr(tp({ loadBalancer: { localityLbSetting: { failover: [{ from: 'us-east1', to: 'us-east1' }] } } })), ['spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]: failover must name different regions in `from` and `to`']],
  ['locality weights', dr(tp({ loadBalancer: { localityLbSetting: { distribute: [{ from: 'us/*', to: { 'us/a/*': 60, 'us/b/*': 30 } }] } } })), ['spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: total weight 90 != 100']],
  ['unknown retryOn', vs(http({ retries: { attempts: 2, retryOn: '5xx,sometimes' } })), ['spec.http[0].retries.retryOn: unknown retryOn condition `sometimes`']],
  ['percentage over 100 (scalar)', vs(http({ fault: { abort: { httpStatus: 500, percentage: 150 } } })), ['spec.http[0].fault.abort.percentage: percentage must be between 0 and 100, got 150']],
  ['percentage over 100 ({value})', vs(http({ fault: { delay: { fixedDelay: '1s', percentage: { value: 101 } } } })), ['spec.http[0].fault.delay.percentage.value: percentage must be between 0 and 100, got 101']],
  ['fault delay without delay', vs(http({ fault: { delay: { percentage: 10 } } })), ['spec.http[0].fault.delay: one of `fixedDelay`, `exponentialDelay` is required']],
  ['abort with bad status', vs(http({ fault: { abort: { httpStatus: 99 } } })), ['spec.http[0].fault.abort.httpStatus: must be between 200 and 599, got 99']],
  ['empty fault', vs(http({ fault: {} })), ['spec.http[0].fault: one of `delay`, `abort` is required']],
  ['route and redirect', vs({ hosts: ['a'], http: [{ route: [dest('a')], redirect: { uri: '/x' } }] }), ['spec.http[0]: only one of `route`, `redirect`, `directResponse`, `delegate` may be set, got `route`, `redirect`']],
  ['http route with nothing to do', vs({ hosts: ['a'], http: [{ match: [{ uri: { prefix: '/' } }] }] }), ['spec.http[0]: one of `route`, `redirect`, `directResponse`, `delegate` is required']],
  ['two string matchers', vs({ hosts: ['a'], http: [{ match: [{ uri: { exact: '/a', prefix: '/' } }], route: [dest('a')] }] }), ['spec.http[0].match[0].uri: only one of `exact`, `prefix`, `regex` may be set, got `exact`, `prefix`']],
  ['empty uri match', vs({ hosts: ['a'], http: [{ match: [{ uri: {} }], route: [dest('a')] }] }), ['spec.http[0].match[0].uri: one of `exact`, `prefix`, `regex` is required']],
  ['bad regex', vs({ hosts: ['a'], http: [{ match: [{ uri: { regex: '/foo/(' } }], route: [dest('a')] }] }), ['spec.http[0].match[0].uri.regex: invalid regex `/foo/(`: unterminated group']],
  ['upper-case header match', vs({ hosts: ['a'], http: [{ match: [{ headers: { 'End-User': { exact: 'jason' } } }], route: [dest('a')] }] }), ['spec.http[0].match[0].headers.End-User: invalid header name `End-User`: header names must be lower-case']],
  ['mirrorPercentage without mirror', vs(http({ mirrorPercentage: { value: 50 } })), ['spec.http[0]: `mirrorPercentage` needs `mirror`']],
  ['delegate VS with gateways', vs({ gateways: ['gw'], http: [{ route: [dest('a')] }] }), ['spec.gateways: a delegate VirtualService (no `hosts`) must not set `gateways`']],
  ['VS without routes', vs({ hosts: ['a'] }), ['spec: one of `http`, `tls`, `tcp` is required']],
  ['tls route without sniHosts', vs({ hosts: ['a.com'], tls: [{ match: [{ port: 443 }], route: [dest('a')] }] }), ['spec.tls[0].match[0].sniHosts: required field is missing']],
  ['tcp match bad subnet', vs({ hosts: ['db'], tcp: [{ match: [{ destinationSubnets: ['10.0.0.0/33'] }], route: [dest('db')] }] }), ['spec.tcp[0].match[0].destinationSubnets[0]: invalid address `10.0.0.0/33`: expected an IP address or a CIDR block']],
  ['collects every violation', vs({ hosts: ['reviews'], http: [{ route: [dest('reviews', 'v1', 101), { destination: { hots: 'x' } }], timeout: '3' }] }), [
    'spec.http[0].route[0].weight: must be between 0 and 100, got 101',
    'spec.http[0].route[1].destination.hots: unknown field `hots`; did you mean `host`?',
    'spec.http[0].route[1].destination.host: required field is missing',
    'spec.http[0].timeout: invalid duration `3`: missing unit; use a number with a unit: ns, us, ms, s, m or h, like 1.5s, 500ms, 1m',
  ]],
  // DestinationRule
  ['unknown LB', dr(tp({ loadBalancer: { simple: 'ROUND_ROBBIN' } })), ['spec.trafficPolicy.loadBalancer.simple: unknown load balancer `ROUND_ROBBIN`; expected one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST; did you mean `ROUND_ROBIN`?']],
  ['simple and consistentHash', dr(tp({ loadBalancer: { simple: 'RANDOM', consistentHash: { useSourceIp: true } } })), ['spec.trafficPolicy.loadBalancer: only one of `simple`, `consistentHash` may be set, got `simple`, `consistentHash`']],
  ['consistentHash with no key', dr(tp({ loadBalancer: { consistentHash: {} } })), ['spec.trafficPolicy.loadBalancer.consistentHash: one of `httpHeaderName`, `httpCookie`, `useSourceIp`, `httpQueryParameterName` is required']],
  ['outlier ejection percent', dr(tp({ outlierDetection: { maxEjectionPercent: 120, interval: '1m' } })), ['spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be between 0 and 100, got 120']],
  ['outlier interval zero', dr(tp({ outlierDetection: { interval: '0s' } })), ['spec.trafficPolicy.outlierDetection.interval: duration must be at least 1ms, got `0s`']],
  ['MUTUAL without certificates', dr(tp({ portLevelSettings: [{ port: { number: 443 }, tls: { mode: 'MUTUAL' } }] })), [
    'spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate: client certificate required for mutual tls (or set `credentialName`)',
    'spec.trafficPolicy.portLevelSettings[0].tls.privateKey: private key required for mutual tls (or set `credentialName`)',
  ]],
  ['tls mode lower-case', dr(tp({ tls: { mode: 'istio_mutual' } })), ['spec.trafficPolicy.tls.mode: unknown TLS mode `istio_mutual`; expected one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL; did you mean `ISTIO_MUTUAL`?']],
  ['duplicate subset', dr({ host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v1', labels: { version: 'v2' } }] }), ['spec.subsets[1]: duplicate subset name `v1` (first defined at spec.subsets[0])']],
  ['subset name invalid', dr({ host: 'reviews', subsets: [{ name: 'V1' }] }), ["spec.subsets[0].name: invalid subset name `V1`: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)"]],
  ['subset label value invalid', dr({ host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1!' } }] }), ["spec.subsets[0].labels.version: invalid label value `v1!`: must be at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"]],
  ['DR bare wildcard host', dr({ host: '*' }), ['spec.host: wildcard host `*` is not allowed here']],
  ['DR host missing', dr({ subsets: [] }), ['spec.host: required field is missing']],
  // ServiceEntry
  ['duplicate port name', se({ hosts: ['a.com'], ports: [{ number: 80, name: 'http' }, { number: 81, name: 'http' }] }), ['spec.ports[1].name: port name `http` already defined at ports[0]']],
  ['duplicate port number', se({ hosts: ['a.com'], ports: [{ number: 80, name: 'http' }, { number: 80, name: 'http-2' }] }), ['spec.ports[1].number: port 80 already defined at ports[0]']],
  ['port out of range', se({ hosts: ['a.com'], ports: [{ number: 70000, name: 'http' }] }), ['spec.ports[0].number: must be between 1 and 65535, got 70000']],
  ['port without name', se({ hosts: ['a.com'], ports: [{ number: 80, protocol: 'HTTP' }] }), ['spec.ports[0].name: required field is missing']],
  ['unknown protocol', se({ hosts: ['a.com'], ports: [{ number: 80, name: 'web', protocol: 'HTTP3' }] }), ['spec.ports[0].protocol: unknown protocol `HTTP3`; expected one of HTTP, HTTPS, GRPC, GRPC_WEB, HTTP2, MONGO, MYSQL, REDIS, TCP, TLS, UDP; did you mean `HTTP`?']],
  ['no hosts', se({ ports: [] }), ['spec.hosts: required field is missing']],
  ['empty hosts', se({ hosts: [] }), ['spec.hosts: must not be empty']],
  ['bare wildcard SE host', se({ hosts: ['*'] }), ['spec.hosts[0]: wildcard host `*` is not allowed here']],
  ['bad address', se({ hosts: ['a.com'], addresses: ['1.2.3.256'] }), ['spec.addresses[0]: invalid address `1.2.3.256`: expected an IP address or a CIDR block']],
  ['bad resolution', se({ hosts: ['a.com'], resolution: 'DNS_RR' }), ['spec.resolution: unknown resolution `DNS_RR`; expected one of NONE, STATIC, DNS, DNS_ROUND_ROBIN']],
  ['STATIC endpoint not an IP', se({ hosts: ['a.com'], resolution: 'STATIC', ports: [{ number: 80, name: 'http' }], endpoints: [{ address: 'foo.com' }] }), ['spec.endpoints[0].address: endpoint address `foo.com` is not a valid IP address (resolution STATIC)']],
  ['endpoint port not defined', se({ hosts: ['a.com'], resolution: 'DNS', ports: [{ number: 80, name: 'http' }], endpoints: [{ address: 'b.com', ports: { grpc: 9000 } }] }), ['spec.endpoints[0].ports.grpc: endpoint port `grpc` is not defined by the service entry']],
  ['wildcard with DNS', se({ hosts: ['*.a.com'], resolution: 'DNS' }), ['spec.hosts[0]: wildcard host `*.a.com` is not allowed with resolution DNS and no endpoints']],
  ['selector and endpoints', se({ hosts: ['a.com'], resolution: 'STATIC', workloadSelector: { labels: { app: 'a' } }, endpoints: [{ address: '1.1.1.1' }] }), ['spec: only one of `workloadSelector`, `endpoints` may be set, got `workloadSelector`, `endpoints`']],
  ['endpoints with NONE', se({ hosts: ['a.com'], endpoints: [{ address: '1.1.1.1' }] }), ['spec.endpoints: no endpoints should be provided for resolution NONE']],
  // WorkloadEntry / Gateway / Sidecar
  ['workload entry without address', doc(NET, 'WorkloadEntry', { labels: { app: 'a' } }), ['spec.address: required field is missing (an address is required unless `network` is set)']],
  ['HTTPS server without tls', gw({ servers: [{ port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['*'] }] }), ['spec.servers[0].tls: server must have TLS settings for protocol HTTPS']],
  ['SIMPLE without a certificate', gw(server({ port: { number: 443, name: 'https' }, tls: { mode: 'SIMPLE' } })), [
    'spec.servers[0].tls.serverCertificate: SIMPLE TLS requires a server certificate (or `credentialName`)',
    'spec.servers[0].tls.privateKey: SIMPLE TLS requires a private key (or `credentialName`)',
  ]],
  ['gateway host with bad namespace', gw(server({ hosts: ['Bad_NS/foo.com'] })), ['spec.servers[0].hosts[0]: invalid namespace `Bad_NS` in host `Bad_NS/foo.com`']],
  ['gateway without servers', gw({ selector: { istio: 'ingressgateway' } }), ['spec.servers: required field is missing']],
  ['gateway duplicate port name', gw({ servers: [{ port: { number: 80, name: 'http' }, hosts: ['*'] }, { port: { number: 8080, name: 'http' }, hosts: ['*'] }] }), ['spec.servers[1].port.name: port name `http` already defined at servers[0]']],
  ['sidecar egress host without namespace', doc(NET, 'Sidecar', { egress: [{ hosts: ['foo.com'] }] }), ['spec.egress[0].hosts[0]: invalid host `foo.com`: expected `namespace/dnsName` (`*/` for any namespace, `./` for this one)']],
  // security
  ['authz bad action', doc(SEC, 'AuthorizationPolicy', { action: 'allow' }), ['spec.action: unknown action `allow`; expected one of ALLOW, DENY, AUDIT, CUSTOM; did you mean `ALLOW`?']],
  ['authz CUSTOM without provider', doc(SEC, 'AuthorizationPolicy', { action: 'CUSTOM', rules: [{}] }), ['spec.provider: required field is missing (action CUSTOM needs a provider)']],
  ['authz empty source', doc(SEC, 'AuthorizationPolicy', { rules: [{ from: [{ source: {} }] }] }), ['spec.rules[0].from[0].source: `source` must not be empty']],
  ['authz bad port', doc(SEC, 'AuthorizationPolicy', { rules: [{ to: [{ operation: { ports: ['http'] } }] }] }), ['spec.rules[0].to[0].operation.ports[0]: invalid port `http`: expected a port number 0-65535 as a string']],
  ['authz condition without values', doc(SEC, 'AuthorizationPolicy', { rules: [{ when: [{ key: 'request.headers[version]' }] }] }), ['spec.rules[0].when[0]: at least one of `values` or `notValues` must be set for key request.headers[version]']],
  ['authz bad selector', doc(SEC, 'AuthorizationPolicy', { selector: { labels: { app: 'a' } } }), [
    'spec.selector.labels: unknown field `labels`; did you mean `matchLabels`?',
    'spec.selector.matchLabels: required field is missing',
  ]],
  ['peer authentication bad mode', doc(SEC, 'PeerAuthentication', { mtls: { mode: 'STRICTER' } }), ['spec.mtls.mode: unknown mTLS mode `STRICTER`; expected one of UNSET, DISABLE, PERMISSIVE, STRICT; did you mean `STRICT`?']],
  ['portLevelMtls without selector', doc(SEC, 'PeerAuthentication', { portLevelMtls: { '8080': { mode: 'DISABLE' } } }), ['spec.portLevelMtls: portLevelMtls requires a workload `selector`']],
  ['jwt rule without issuer', doc(SEC, 'RequestAuthentication', { jwtRules: [{ jwksUri: 'https://x/jwks' }] }), ['spec.jwtRules[0].issuer: required field is missing']],
  ['jwt rule with jwks and jwksUri', doc(SEC, 'RequestAuthentication', { jwtRules: [{ issuer: 'i', jwksUri: 'https://x/jwks', jwks: '{}' }] }), ['spec.jwtRules[0]: only one of `jwksUri`, `jwks` may be set, got `jwksUri`, `jwks`']],
  ['jwt bad jwksUri', doc(SEC, 'RequestAuthentication', { jwtRules: [{ issuer: 'i', jwksUri: 'ftp://x/jwks' }] }), ['spec.jwtRules[0].jwksUri: invalid jwksUri `ftp://x/jwks`: expected an http://, https:// or file:/// URL']],
  // Trellis kinds
  ['mesh outbound mode', doc(TRELLIS, 'MeshConfig', { outboundTrafficPolicy: { mode: 'DENY' } }), ['spec.outboundTrafficPolicy.mode: unknown mode `DENY`; expected one of ALLOW_ANY, REGISTRY_ONLY']],
  ['mesh registry priority', doc(TRELLIS, 'MeshConfig', { registryPriority: ['file', 'consull', 'file'] }), [
    'spec.registryPriority[1]: unknown registry type `consull`; expected one of kubernetes, file, consul, eureka, trellis; did you mean `consul`?',
    'spec.registryPriority[2]: duplicate registry type `file` (first defined at spec.registryPriority[0])',
  ]],
  ['mesh bad vipRange', doc(TRELLIS, 'MeshConfig', { vipRange: '240.240.0.0' }), ['spec.vipRange: invalid CIDR `240.240.0.0`']],
  ['registry option for another type', doc(TRELLIS, 'Registry', { type: 'eureka', address: 'http://e:8761/eureka', healthFilter: 'passing' }), ['spec.healthFilter: applies only to type consul, not eureka']],
  ['registry consul without address', doc(TRELLIS, 'Registry', { type: 'consul' }), ['spec.address: required field is missing (type consul needs an address)']],
  ['registry two credentials', doc(TRELLIS, 'Registry', { type: 'consul', address: 'http://c:8500', credentials: { tokenFile: '/t', tokenEnv: 'T' } }), ['spec.credentials: only one of `tokenFile`, `tokenEnv` may be set, got `tokenFile`, `tokenEnv`']],
  ['registry bad deltaInterval', doc(TRELLIS, 'Registry', { type: 'eureka', address: 'http://e', deltaInterval: 30 }), ['spec.deltaInterval: expected a duration string like 1.5s, 500ms or 1m, got a number (30); write it with a unit, like `30s` or `30ms`']],
];

describe('decodeResource: invalid documents', () => {
  it(`has at least 45 cases (${CASES.length})`, () => {
    expect(CASES.length).to.be.at.least(45);
  });
  for (const [title, input, expected] of CASES) {
    it(title, () => {
      const r = decodeResource(input);
      expect(r.ok).to.equal(false);
      if (r.ok) return;
      expect(r.violations.map(formatViolation)).to.deep.equal(expected);
    });
  }
  it('keeps a `__proto__` map key as data', () => {
    const r = decodeResource(JSON.parse('{"apiVersion":"trellis.dev/v1alpha1","kind":"MeshConfig","metadata":{"name":"m"},"spec":{"networks":{"__proto__":{"cidrs":["10.0.0.0/8"]}}}}'));
    expect(r.ok).to.equal(true);
    if (!r.ok || !isKind(r.resource, 'MeshConfig')) return;
    expect(Object.keys(r.resource.spec.networks ?? {})).to.deep.equal(['__proto__']);
    expect(Object.getPrototypeOf(r.resource.spec.networks)).to.equal(Object.prototype);
  });
  it('names the resource that failed', () => {
    const r = decodeResource({ apiVersion: NET, kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'bookinfo' }, spec: { hosts: ['reviews'] } });
    expect(r).to.deep.include({ ok: false, kind: 'VirtualService', name: 'reviews', namespace: 'bookinfo' });
  });
});
