/** `networking.istio.io` DestinationRule (istio/api networking/v1alpha3/destination_rule.proto). */
import {
  arrayOf, bool, duration, enumOf, int, labels, mapOf, num, obj, percent, required, str, strings, type Schema,
} from '../decode/schema.js';
import { joinKey } from '../decode/violations.js';
import { checkDnsLabel, checkHost } from '../decode/syntax.js';
import { exportTo, matchLabelsSelector, portSelector, type MatchLabelsSelector, type PortSelector } from './common.js';

export type SimpleLB = 'UNSPECIFIED' | 'LEAST_CONN' | 'RANDOM' | 'PASSTHROUGH' | 'ROUND_ROBIN' | 'LEAST_REQUEST';

export interface HTTPCookie {
  readonly name: string;
  readonly path?: string;
  /** Milliseconds; 0 makes a session cookie. */
  readonly ttl?: number;
}
export interface ConsistentHashLB {
  readonly httpHeaderName?: string;
  readonly httpCookie?: HTTPCookie;
  readonly useSourceIp?: boolean;
  readonly httpQueryParameterName?: string;
  readonly ringHash?: { readonly minimumRingSize?: number };
  readonly maglev?: { readonly tableSize?: number };
  /** Deprecated: use `ringHash.minimumRingSize`. */
  readonly minimumRingSize?: number;
}
const consistentHash = (): Schema<ConsistentHashLB> =>
  obj<ConsistentHashLB>(
    {
      httpHeaderName: str(),
      httpCookie: obj<HTTPCookie>({ name: required(str()), path: str(), ttl: duration() }),
      useSourceIp: bool(),
      httpQueryParameterName: str(),
      ringHash: obj<{ minimumRingSize?: number }>({ minimumRingSize: int() }),
      maglev: obj<{ tableSize?: number }>({ tableSize: int() }),
      minimumRingSize: int(),
    },
    {
      exactlyOne: [['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName']],
      oneOf: [['ringHash', 'maglev', 'minimumRingSize']],
    },
  );

export interface LocalityDistribute {
  readonly from?: string;
  /** Locality → weight percentage; the weights sum to 100. */
  readonly to?: Readonly<Record<string, number>>;
}
export interface LocalityFailover {
  readonly from?: string;
  readonly to?: string;
}
export interface LocalityLoadBalancerSetting {
  readonly distribute?: readonly LocalityDistribute[];
  readonly failover?: readonly LocalityFailover[];
  readonly failoverPriority?: readonly string[];
  readonly enabled?: boolean;
}
const localityLb = (): Schema<LocalityLoadBalancerSetting> =>
  obj<LocalityLoadBalancerSetting>(
    {
      distribute: arrayOf(
        obj<LocalityDistribute>(
          { from: str(), to: mapOf(int({ min: 1, max: 100 })) },
          {
            check(d, path, cx) {
              const total = Object.values(d.to ?? {}).reduce((a, b) => a + b, 0);
              if (d.to !== undefined && total !== 100) cx.add(joinKey(path, 'to'), `total weight ${total} != 100`);
            },
          },
        ),
      ),
      failover: arrayOf(
        obj<LocalityFailover>(
          { from: str(), to: str((t) => (t.includes('*') ? 'failover region must not contain a `*` wildcard' : undefined)) },
          { check: (f, path, cx) => { if (f.from !== undefined && f.from === f.to) cx.add(path, 'failover must name different regions in `from` and `to`'); } },
        ),
      ),
      failoverPriority: strings(),
      enabled: bool(),
    },
    { oneOf: [['distribute', 'failover']] },
  );

export interface WarmupConfiguration {
  /** Milliseconds. */
  readonly duration: number;
  /** Percentage 0–100. */
  readonly minimumPercent?: number;
  readonly aggression?: number;
}

export interface LoadBalancerSettings {
  readonly simple?: SimpleLB;
  readonly consistentHash?: ConsistentHashLB;
  readonly localityLbSetting?: LocalityLoadBalancerSetting;
  /** Milliseconds of slow-start ramp for new endpoints. */
  readonly warmupDurationSecs?: number;
  readonly warmup?: WarmupConfiguration;
}
const loadBalancer = (): Schema<LoadBalancerSettings> =>
  obj<LoadBalancerSettings>(
    {
      simple: enumOf<SimpleLB>(['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'], { what: 'load balancer' }),
      consistentHash: consistentHash(),
      localityLbSetting: localityLb(),
      warmupDurationSecs: duration({ min: 1 }),
      warmup: obj<WarmupConfiguration>({ duration: required(duration({ min: 1 })), minimumPercent: num({ min: 0, max: 100 }), aggression: num({ min: 1 }) }),
    },
    { oneOf: [['simple', 'consistentHash'], ['warmupDurationSecs', 'warmup']] },
  );

export interface TcpKeepalive {
  readonly probes?: number;
  /** Milliseconds. */
  readonly time?: number;
  /** Milliseconds. */
  readonly interval?: number;
}
export interface TCPSettings {
  readonly maxConnections?: number;
  /** Milliseconds, at least 1. Envoy's default when absent is 10 s. */
  readonly connectTimeout?: number;
  readonly tcpKeepalive?: TcpKeepalive;
  /** Milliseconds. */
  readonly maxConnectionDuration?: number;
  /** Milliseconds. */
  readonly idleTimeout?: number;
}
export interface HTTPSettings {
  readonly http1MaxPendingRequests?: number;
  readonly http2MaxRequests?: number;
  readonly maxRequestsPerConnection?: number;
  readonly maxRetries?: number;
  /** Milliseconds. */
  readonly idleTimeout?: number;
  readonly h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  readonly useClientProtocol?: boolean;
  readonly maxConcurrentStreams?: number;
}
export interface ConnectionPoolSettings {
  readonly tcp?: TCPSettings;
  readonly http?: HTTPSettings;
}
export const connectionPool = (): Schema<ConnectionPoolSettings> =>
  obj<ConnectionPoolSettings>({
    tcp: obj<TCPSettings>({
      maxConnections: int(),
      connectTimeout: duration({ min: 1 }),
      tcpKeepalive: obj<TcpKeepalive>({ probes: int(), time: duration({ min: 1 }), interval: duration({ min: 1 }) }),
      maxConnectionDuration: duration({ min: 1 }),
      idleTimeout: duration(),
    }),
    http: obj<HTTPSettings>({
      http1MaxPendingRequests: int(),
      http2MaxRequests: int(),
      maxRequestsPerConnection: int(),
      maxRetries: int(),
      idleTimeout: duration({ min: 1 }),
      h2UpgradePolicy: enumOf(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'] as const),
      useClientProtocol: bool(),
      maxConcurrentStreams: int(),
    }),
  });

export interface OutlierDetection {
  /** Deprecated: use `consecutive5xxErrors`. */
  readonly consecutiveErrors?: number;
  readonly splitExternalLocalOriginErrors?: boolean;
  readonly consecutiveLocalOriginFailures?: number;
  readonly consecutiveGatewayErrors?: number;
  readonly consecutive5xxErrors?: number;
  /** Milliseconds between ejection sweeps, at least 1; Envoy's default 10 s. */
  readonly interval?: number;
  /** Milliseconds, at least 1; Envoy's default 30 s. */
  readonly baseEjectionTime?: number;
  /** Percentage 0–100; Envoy's default 10. */
  readonly maxEjectionPercent?: number;
  /** Percentage 0–100. */
  readonly minHealthPercent?: number;
}
const outlierDetection = (): Schema<OutlierDetection> =>
  obj<OutlierDetection>(
    {
      consecutiveErrors: int(),
      splitExternalLocalOriginErrors: bool(),
      consecutiveLocalOriginFailures: int(),
      consecutiveGatewayErrors: int(),
      consecutive5xxErrors: int(),
      interval: duration({ min: 1 }),
      baseEjectionTime: duration({ min: 1 }),
      maxEjectionPercent: int({ min: 0, max: 100 }),
      minHealthPercent: int({ min: 0, max: 100 }),
    },
    {
      check(o, path, cx) {
        if (o.consecutiveLocalOriginFailures !== undefined && o.splitExternalLocalOriginErrors !== true) {
          cx.add(joinKey(path, 'consecutiveLocalOriginFailures'), 'only takes effect with `splitExternalLocalOriginErrors: true`');
        }
      },
    },
  );

export type ClientTLSMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
export interface ClientTLSSettings {
  readonly mode: ClientTLSMode;
  readonly clientCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  readonly credentialName?: string;
  readonly subjectAltNames?: readonly string[];
  readonly sni?: string;
  readonly insecureSkipVerify?: boolean;
  readonly caCrl?: string;
}
export const clientTls = (): Schema<ClientTLSSettings> =>
  obj<ClientTLSSettings>(
    {
      mode: required(enumOf<ClientTLSMode>(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'], { what: 'TLS mode' })),
      clientCertificate: str(),
      privateKey: str(),
      caCertificates: str(),
      credentialName: str(),
      subjectAltNames: strings(),
      sni: str(),
      insecureSkipVerify: bool(),
      caCrl: str(),
    },
    {
      check(t, path, cx) {
        if (t.mode === 'MUTUAL' && t.credentialName === undefined) {
          if (t.clientCertificate === undefined) cx.add(joinKey(path, 'clientCertificate'), 'client certificate required for mutual tls (or set `credentialName`)');
          if (t.privateKey === undefined) cx.add(joinKey(path, 'privateKey'), 'private key required for mutual tls (or set `credentialName`)');
        }
        if (t.mode === 'ISTIO_MUTUAL' || t.mode === 'DISABLE') {
          for (const k of ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'subjectAltNames', 'sni'] as const) {
            if (t[k] !== undefined) cx.add(joinKey(path, k), `cannot be set with mode ${t.mode}`);
          }
        }
      },
    },
  );

export interface PortTrafficPolicy {
  readonly port?: PortSelector;
  readonly loadBalancer?: LoadBalancerSettings;
  readonly connectionPool?: ConnectionPoolSettings;
  readonly outlierDetection?: OutlierDetection;
  readonly tls?: ClientTLSSettings;
}
export interface TunnelSettings {
  /** Default CONNECT. */
  readonly protocol: 'CONNECT' | 'POST';
  readonly targetHost: string;
  readonly targetPort: number;
}
export interface ProxyProtocol {
  readonly version?: 'V1' | 'V2';
}
/** Retries limited to a share of active requests (Istio 1.27+). */
export interface RetryBudget {
  /** Percentage 0–100 of active requests that may be retries; Envoy's default 20. */
  readonly percent?: number;
  /** Retries always allowed regardless of `percent`; Envoy's default 3. */
  readonly minRetryConcurrency?: number;
}
export interface TrafficPolicy {
  readonly loadBalancer?: LoadBalancerSettings;
  readonly connectionPool?: ConnectionPoolSettings;
  readonly outlierDetection?: OutlierDetection;
  readonly tls?: ClientTLSSettings;
  readonly portLevelSettings?: readonly PortTrafficPolicy[];
  readonly tunnel?: TunnelSettings;
  readonly proxyProtocol?: ProxyProtocol;
  readonly retryBudget?: RetryBudget;
}
const trafficPolicy = (): Schema<TrafficPolicy> =>
  obj<TrafficPolicy>({
    loadBalancer: loadBalancer(),
    connectionPool: connectionPool(),
    outlierDetection: outlierDetection(),
    tls: clientTls(),
    portLevelSettings: arrayOf(
      obj<PortTrafficPolicy>({
        port: portSelector(),
        loadBalancer: loadBalancer(),
        connectionPool: connectionPool(),
        outlierDetection: outlierDetection(),
        tls: clientTls(),
      }),
      { uniqueBy: (p) => (p.port === undefined ? undefined : String(p.port.number)), uniqueWhat: 'port' },
    ),
    tunnel: obj<TunnelSettings>({
      protocol: { schema: enumOf(['CONNECT', 'POST'] as const), default: 'CONNECT' },
      targetHost: required(str((h) => checkHost(h, { ip: true }))),
      targetPort: required(int({ min: 1, max: 65535 })),
    }),
    proxyProtocol: obj<ProxyProtocol>({ version: enumOf(['V1', 'V2'] as const) }),
    retryBudget: obj<RetryBudget>({ percent: percent({ encodeAsNumber: true }), minRetryConcurrency: int() }),
  });

export interface Subset {
  /** A DNS-1123 label, unique within the rule. */
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly trafficPolicy?: TrafficPolicy;
}

export interface DestinationRuleSpec {
  /** Service the rule applies to: FQDN, short name or `*.example.com`. */
  readonly host: string;
  readonly trafficPolicy?: TrafficPolicy;
  readonly subsets?: readonly Subset[];
  readonly exportTo?: readonly string[];
  readonly workloadSelector?: MatchLabelsSelector;
}
export const destinationRuleSpec = (): Schema<DestinationRuleSpec> =>
  obj<DestinationRuleSpec>({
    host: required(str((h) => checkHost(h, { bareWildcard: false }))),
    trafficPolicy: trafficPolicy(),
    subsets: arrayOf(
      obj<Subset>({ name: required(str((n) => checkDnsLabel(n)?.replace('invalid name', 'invalid subset name'))), labels: labels(), trafficPolicy: trafficPolicy() }),
      { uniqueBy: (s) => s.name, uniqueWhat: 'subset name' },
    ),
    exportTo: exportTo(),
    workloadSelector: matchLabelsSelector(),
  });
