/**
 * Every environment variable trellis-proxy reads, in one table (DESIGN.md §6.7): name, the flag it backs, its
 * default and what it means. A flag given on the command line wins over the variable.
 */
export interface EnvVar {
  readonly name: string;
  readonly flag: string;
  readonly default: string;
  readonly description: string;
}

export const PROXY_ENV: readonly EnvVar[] = Object.freeze([
  { name: 'TRELLIS_XDS_ADDRESS', flag: '--xds-address', default: 'localhost:15012', description: 'control plane ADS address HOST:PORT' },
  { name: 'TRELLIS_XDS_PLAINTEXT', flag: '--xds-plaintext', default: 'false', description: 'use plaintext gRPC to the control plane (loopback/dev only; port 15010)' },
  { name: 'TRELLIS_XDS_ROOT_CERT', flag: '--xds-root-cert', default: '/var/run/trellis/root-cert.pem', description: 'PEM bundle that verifies the control plane (TLS)' },
  { name: 'TRELLIS_SDS_SOCKET', flag: '--sds-socket', default: '/var/run/trellis/sds/socket', description: 'node agent SDS Unix socket' },
  { name: 'TRELLIS_NODE_ID', flag: '--node-id', default: '(sidecar~<ip>~<workload>.<ns>~<ns>.svc.cluster.local)', description: 'xDS node id' },
  { name: 'POD_NAMESPACE', flag: '--namespace', default: 'default', description: 'workload namespace (node metadata NAMESPACE)' },
  { name: 'TRELLIS_WORKLOAD_NAME', flag: '--workload-name', default: '(hostname)', description: 'workload name (node metadata WORKLOAD_NAME)' },
  { name: 'TRELLIS_LABELS', flag: '--labels', default: '', description: 'workload labels k=v,... (node metadata LABELS)' },
  { name: 'SERVICE_ACCOUNT', flag: '--service-account', default: 'default', description: 'service account (node metadata SERVICE_ACCOUNT)' },
  { name: 'INSTANCE_IP', flag: '--ip', default: '(first non-internal IPv4)', description: 'this host/pod IP' },
  { name: 'TRELLIS_CLUSTER_ID', flag: '--cluster-id', default: 'Kubernetes', description: 'node metadata CLUSTER_ID' },
  { name: 'TRELLIS_NETWORK', flag: '--network', default: '', description: 'node metadata NETWORK' },
  { name: 'TRELLIS_TRUST_DOMAIN', flag: '--trust-domain', default: 'cluster.local', description: 'SPIFFE trust domain (metric labels)' },
  { name: 'TRELLIS_PROXY_MODE', flag: '--mode', default: 'sidecar', description: 'sidecar | gateway' },
  { name: 'TRELLIS_OUTBOUND_PORT', flag: '--outbound-port', default: '15001', description: 'port of the virtualOutbound listener' },
  { name: 'TRELLIS_INBOUND_PORT', flag: '--inbound-port', default: '15006', description: 'port of the virtualInbound listener' },
  { name: 'TRELLIS_ADMIN_PORT', flag: '--admin-port', default: '15000', description: 'admin port (127.0.0.1 only)' },
  { name: 'TRELLIS_PROMETHEUS_PORT', flag: '--prometheus-port', default: '15090', description: 'Prometheus /stats/prometheus port' },
  { name: 'TRELLIS_HEALTH_PORT', flag: '--health-port', default: '15021', description: '/healthz/ready port' },
  { name: 'TRELLIS_DRAIN_TIME', flag: '--drain-time', default: '5', description: 'seconds to wait for in-flight requests on SIGTERM' },
  { name: 'TRELLIS_DETECTION_TIMEOUT', flag: '--protocol-detection-timeout', default: '100', description: 'ms to wait for a client\'s first bytes before treating it as opaque TCP' },
  { name: 'TRELLIS_CONCURRENCY', flag: '--concurrency', default: '2', description: 'worker processes sharing the listeners (1 = no workers)' },
  { name: 'TRELLIS_GATEWAY_CREDENTIALS', flag: '--gateway-credentials', default: '', description: 'directory of <credentialName>/{tls.crt,tls.key,ca.crt} for gateway servers (docs/gateways.md)' },
  { name: 'TRELLIS_LISTENER_ADDRESS', flag: '--listener-address', default: '', description: 'bind every listener from LDS on this IP instead of its own address (e.g. a gateway on one interface)' },
  { name: 'TRELLIS_ACCESS_LOG', flag: '--access-log', default: '(control plane)', description: 'FILE (or /dev/stdout) for every access log line, or off; unset = as the control plane configures' },
  { name: 'TRELLIS_ACCESS_LOG_ENCODING', flag: '--access-log-encoding', default: 'JSON', description: 'JSON | TEXT (Istio\'s default formats) for --access-log FILE' },
  { name: 'TRELLIS_TRACE_SAMPLING', flag: '--trace-sampling', default: '(control plane, else 1)', description: 'percent of new traces sampled, 0-100' },
  { name: 'TRELLIS_ZIPKIN', flag: '--zipkin', default: '(control plane)', description: 'Zipkin collector HOST:PORT (spans POSTed to /api/v2/spans)' },
  { name: 'TRELLIS_LOG_LEVEL', flag: '--log-level', default: 'info', description: 'debug | info | warn | error | off' },
]);

/** The value for a flag from the environment, or undefined. */
export function envFor(flag: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = PROXY_ENV.find((e) => e.flag === flag);
  return v ? env[v.name] : undefined;
}
