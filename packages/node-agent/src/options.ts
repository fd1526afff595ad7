/**
 * The agent's settings: every flag has one environment variable, declared here once with its default and
 * description, so `--help`, the docs and `agent.env` agree. A flag on the command line beats the environment,
 * which beats the default.
 */
import { TrellisError } from '@trellis/api';

export interface AgentSetting {
  /** commander flag, e.g. `--state-dir <dir>`. */
  readonly flag: string;
  /** camelCase option key commander produces for the flag. */
  readonly key: keyof AgentOptions;
  readonly env: string;
  readonly default: string;
  readonly description: string;
}

export interface AgentOptions {
  readonly bundle: string;
  readonly stateDir: string;
  readonly sdsSocket: string;
  readonly listenHttp: string;
  readonly socketGroup: string;
  readonly certTtl: string;
  readonly dnsListen: string;
  readonly workloadIp: string;
  readonly locality: string;
  readonly workloadLabels: string;
}

export const AGENT_SETTINGS: readonly AgentSetting[] = Object.freeze([
  { flag: '--bundle <dir>', key: 'bundle', env: 'TRELLIS_BUNDLE_DIR', default: '/etc/trellis', description: 'bundle written by `trellisctl vm configure` (mesh.yaml, root-cert.pem, token)' },
  { flag: '--state-dir <dir>', key: 'stateDir', env: 'TRELLIS_STATE_DIR', default: '/var/lib/trellis', description: 'where the private key and certificate chain are kept (dir 0700, files 0600)' },
  { flag: '--sds-socket <path>', key: 'sdsSocket', env: 'TRELLIS_SDS_SOCKET', default: '/var/run/trellis/sds/socket', description: 'Unix socket of the Envoy SDS v3 server (dir 0750, socket 0660)' },
  { flag: '--listen-http <host:port>', key: 'listenHttp', env: 'TRELLIS_LISTEN_HTTP', default: '127.0.0.1:15020', description: 'health (/healthz/ready) and Prometheus (/metrics) listener' },
  { flag: '--socket-group <name>', key: 'socketGroup', env: 'TRELLIS_SOCKET_GROUP', default: '', description: 'group (name or gid) given to the SDS socket and its directory; empty keeps the agent\'s group' },
  { flag: '--cert-ttl <duration>', key: 'certTtl', env: 'TRELLIS_CERT_TTL', default: '0', description: 'certificate lifetime to ask the CA for (e.g. 24h); 0 lets the CA choose' },
  { flag: '--dns-listen <host:port>', key: 'dnsListen', env: 'TRELLIS_DNS_LISTEN', default: '127.0.0.1:15053', description: 'DNS proxy (UDP and TCP) answering mesh names from the control plane\'s name table; `off` disables it' },
  { flag: '--workload-ip <ip>', key: 'workloadIp', env: 'TRELLIS_WORKLOAD_IP', default: '', description: 'address auto-registered in the WorkloadEntry (bundles naming a WorkloadGroup); empty = the first non-loopback IPv4 address' },
  { flag: '--locality <region/zone/subzone>', key: 'locality', env: 'TRELLIS_LOCALITY', default: '', description: 'locality announced for the auto-registered WorkloadEntry (overrides the group template\'s)' },
  { flag: '--workload-labels <k=v,...>', key: 'workloadLabels', env: 'TRELLIS_WORKLOAD_LABELS', default: '', description: 'extra labels for the auto-registered WorkloadEntry (the group\'s labels win on a clash)' },
].map((s) => Object.freeze(s as AgentSetting)));

/** Resolves every setting: explicit flag value, else the environment, else the default. */
export function resolveAgentOptions(flags: Partial<Record<keyof AgentOptions, string>>, env: NodeJS.ProcessEnv): AgentOptions {
  const out: Record<string, string> = {};
  for (const s of AGENT_SETTINGS) out[s.key] = flags[s.key] ?? env[s.env] ?? s.default;
  return Object.freeze(out as unknown as AgentOptions);
}

/** `HOST:PORT` (`[v6]:PORT` for IPv6) → parts. Throws TRELLIS_ERR_CONFIG naming the setting. */
export function parseHostPort(value: string, setting: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new TrellisError('TRELLIS_ERR_CONFIG', `${setting}: "${value}" is not HOST:PORT`);
  return { host: m[1] ?? m[2]!, port };
}

/** `90`, `90s`, `15m`, `24h`, `1h30m` → seconds. Throws TRELLIS_ERR_CONFIG naming the setting. */
export function parseDurationSeconds(value: string, setting: string): number {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const re = /(\d+)(h|m|s)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== text.length) {
    throw new TrellisError('TRELLIS_ERR_CONFIG', `${setting}: "${value}" is not a duration (use e.g. 90s, 10m, 24h)`);
  }
  return total;
}
