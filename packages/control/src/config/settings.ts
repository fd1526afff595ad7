/**
 * The settings of `trellis-control`: one table declares every flag with its environment variable, default and
 * description, so `--help`, the docs and the parser cannot drift apart.
 *
 * Precedence (lowest to highest): built-in default < environment variable < command-line flag. Mesh-wide settings
 * (trust domain, cluster id, network) given here are only defaults: a `MeshConfig` resource (from `--mesh-config`
 * or the config directory) overrides them field by field (see `mesh-settings.ts`).
 */
import { TrellisError } from '@trellis/model';

export interface SettingSpec {
  /** Flag name without dashes, e.g. `config-dir`. */
  readonly flag: string;
  readonly env: string;
  /** Default as a string; empty string means "unset". */
  readonly default: string;
  readonly description: string;
  /** Placeholder shown in help, e.g. `DIR`. */
  readonly arg: string;
}

export const SETTINGS: readonly SettingSpec[] = Object.freeze([
  { flag: 'config-dir', env: 'TRELLIS_CONFIG_DIR', default: '', arg: 'DIR', description: 'watched directory of YAML/JSON resources (file registry); unset = no file registry' },
  { flag: 'state-dir', env: 'TRELLIS_STATE_DIR', default: '/var/lib/trellis-control', arg: 'DIR', description: 'where the VIP table (and the CA) persist state' },
  { flag: 'listen-xds', env: 'TRELLIS_LISTEN_XDS', default: '0.0.0.0:15012', arg: 'HOST:PORT', description: 'ADS + CSR service over TLS; `off` disables it' },
  { flag: 'listen-xds-plaintext', env: 'TRELLIS_LISTEN_XDS_PLAINTEXT', default: 'off', arg: 'HOST:PORT', description: 'ADS without TLS (loopback/dev only, e.g. 127.0.0.1:15010); `off` disables it' },
  { flag: 'listen-http', env: 'TRELLIS_LISTEN_HTTP', default: '127.0.0.1:15014', arg: 'HOST:PORT', description: '/metrics, /ready, /debug/*, token API; `off` disables it' },
  { flag: 'mesh-config', env: 'TRELLIS_MESH_CONFIG', default: '', arg: 'FILE', description: 'a file holding a trellis.dev/v1alpha1 MeshConfig resource' },
  { flag: 'trust-domain', env: 'TRELLIS_TRUST_DOMAIN', default: 'cluster.local', arg: 'DOMAIN', description: 'SPIFFE trust domain (MeshConfig spec.trustDomain overrides)' },
  { flag: 'cluster-id', env: 'TRELLIS_CLUSTER_ID', default: 'Kubernetes', arg: 'ID', description: 'cluster id of this control plane (MeshConfig spec.clusterId overrides)' },
  { flag: 'network', env: 'TRELLIS_NETWORK', default: '', arg: 'NAME', description: 'network of this control plane (MeshConfig spec.network overrides)' },
  { flag: 'debounce-after', env: 'TRELLIS_DEBOUNCE_AFTER', default: '100ms', arg: 'DURATION', description: 'quiet time after a change before a snapshot is built' },
  { flag: 'debounce-max', env: 'TRELLIS_DEBOUNCE_MAX', default: '1s', arg: 'DURATION', description: 'longest a change waits for a snapshot while changes keep coming' },
  { flag: 'workload-entry-grace', env: 'TRELLIS_WORKLOAD_ENTRY_GRACE', default: '10s', arg: 'DURATION', description: 'how long an auto-registered WorkloadEntry outlives its agent\'s last xDS stream' },
  { flag: 'listen-webhook', env: 'TRELLIS_LISTEN_WEBHOOK', default: 'off', arg: 'HOST:PORT', description: 'HTTPS port: validating admission webhook (POST /validate) and /v1/export/services, e.g. 0.0.0.0:15017; `off` disables it' },
  { flag: 'webhook-cert', env: 'TRELLIS_WEBHOOK_CERT', default: '', arg: 'FILE', description: 'PEM certificate chain for --listen-webhook (re-read when it changes); unset = issued by the mesh CA' },
  { flag: 'webhook-key', env: 'TRELLIS_WEBHOOK_KEY', default: '', arg: 'FILE', description: 'PEM private key for --webhook-cert' },
  { flag: 'webhook-dns-names', env: 'TRELLIS_WEBHOOK_DNS_NAMES', default: '', arg: 'NAMES', description: 'comma-separated DNS names added to the mesh-CA webhook certificate (e.g. trellis-control.trellis-system.svc)' },
  { flag: 'ca-dir', env: 'TRELLIS_CA_DIR', default: '', arg: 'DIR', description: 'plug-in CA: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem; unset = <state-dir>/ca (a root is generated on first start)' },
  { flag: 'workload-cert-ttl', env: 'TRELLIS_WORKLOAD_CERT_TTL', default: '24h', arg: 'DURATION', description: 'lifetime of a workload certificate when the CSR asks for none' },
  { flag: 'max-workload-cert-ttl', env: 'TRELLIS_MAX_WORKLOAD_CERT_TTL', default: '7d', arg: 'DURATION', description: 'longest workload certificate lifetime a CSR may ask for; longer requests are refused' },
  { flag: 'log-level', env: 'TRELLIS_LOG_LEVEL', default: 'info', arg: 'LEVEL', description: 'debug, info, warn or error' },
] as const);

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Parsed settings of one `trellis-control` process. */
export interface ControlSettings {
  readonly configDir?: string;
  readonly stateDir: string;
  readonly listenXds?: HostPort;
  readonly listenXdsPlaintext?: HostPort;
  readonly listenHttp?: HostPort;
  readonly meshConfigFile?: string;
  readonly trustDomain: string;
  readonly clusterId: string;
  readonly network: string;
  readonly debounceAfterMs: number;
  readonly debounceMaxMs: number;
  /** Grace before an auto-registered WorkloadEntry whose agent disconnected is removed. */
  readonly workloadEntryGraceMs: number;
  readonly logLevel: LogLevel;
  /** HTTPS listener for /validate and /v1/export/services. */
  readonly listenWebhook?: HostPort;
  /** Certificate and key files for the webhook port; both or neither (then the mesh CA issues one). */
  readonly webhookCertFile?: string;
  readonly webhookKeyFile?: string;
  readonly webhookDnsNames: readonly string[];
  /** Plug-in CA directory. */
  readonly caDir?: string;
  /** Default and maximum workload certificate lifetimes, whole seconds. */
  readonly workloadCertTtlSeconds: number;
  readonly maxWorkloadCertTtlSeconds: number;
}

/** `HOST:PORT`, `[v6]:PORT`, or `off`/empty (undefined). Throws TRELLIS_ERR_CONFIG naming the setting. */
export function parseHostPort(text: string, setting: string): HostPort | undefined {
  if (text === '' || text === 'off') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new TrellisError('TRELLIS_ERR_CONFIG', `--${setting} ${JSON.stringify(text)}: expected HOST:PORT (port 0-65535) or off`);
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `100ms`, `1s`, `1.5s`, `2m`, `24h`, `7d`, or a bare number of milliseconds. */
export function parseDurationMs(text: string, setting: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new TrellisError('TRELLIS_ERR_CONFIG', `--${setting} ${JSON.stringify(text)}: expected a duration like 100ms, 1s, 2m, 24h, 7d`);
  return Number(m[1]) * UNIT_MS[m[2] ?? 'ms'];
}

/** A certificate lifetime: a duration of at least one whole second, rounded down to whole seconds. */
function parseTtlSeconds(text: string, setting: string): number {
  const s = Math.floor(parseDurationMs(text, setting) / 1000);
  if (s < 1) throw new TrellisError('TRELLIS_ERR_CONFIG', `--${setting} ${JSON.stringify(text)}: must be at least 1s`);
  return s;
}

/**
 * Resolves every setting from flags (already parsed by commander, keyed by camelCase flag name) and the environment.
 * Throws TRELLIS_ERR_CONFIG with a one-line message on a bad value.
 */
export function resolveSettings(flags: Readonly<Record<string, unknown>>, env: NodeJS.ProcessEnv): ControlSettings {
  const get = (flag: string): string => {
    const spec = SETTINGS.find((s) => s.flag === flag);
    if (!spec) throw new Error(`undeclared setting ${flag}`);
    const camel = flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    const fromFlag = flags[camel];
    if (typeof fromFlag === 'string') return fromFlag;
    const fromEnv = env[spec.env];
    return fromEnv !== undefined ? fromEnv : spec.default;
  };
  const level = get('log-level');
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    throw new TrellisError('TRELLIS_ERR_CONFIG', `--log-level ${JSON.stringify(level)}: expected debug, info, warn or error`);
  }
  const after = parseDurationMs(get('debounce-after'), 'debounce-after');
  const ttl = parseTtlSeconds(get('workload-cert-ttl'), 'workload-cert-ttl');
  const maxTtl = parseTtlSeconds(get('max-workload-cert-ttl'), 'max-workload-cert-ttl');
  if (maxTtl < ttl) {
    throw new TrellisError('TRELLIS_ERR_CONFIG', `--max-workload-cert-ttl ${get('max-workload-cert-ttl')} is shorter than --workload-cert-ttl ${get('workload-cert-ttl')}`);
  }
  const certFile = get('webhook-cert') || undefined;
  const keyFile = get('webhook-key') || undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new TrellisError('TRELLIS_ERR_CONFIG', `--webhook-cert and --webhook-key go together: ${certFile ? '--webhook-key' : '--webhook-cert'} is missing`);
  }
  const max = parseDurationMs(get('debounce-max'), 'debounce-max');
  return Object.freeze({
    configDir: get('config-dir') || undefined,
    stateDir: get('state-dir'),
    listenXds: parseHostPort(get('listen-xds'), 'listen-xds'),
    listenXdsPlaintext: parseHostPort(get('listen-xds-plaintext'), 'listen-xds-plaintext'),
    listenHttp: parseHostPort(get('listen-http'), 'listen-http'),
    meshConfigFile: get('mesh-config') || undefined,
    trustDomain: get('trust-domain'),
    clusterId: get('cluster-id'),
    network: get('network'),
    debounceAfterMs: after,
    debounceMaxMs: Math.max(max, after),
    workloadEntryGraceMs: parseDurationMs(get('workload-entry-grace'), 'workload-entry-grace'),
    logLevel: level as LogLevel,
    listenWebhook: parseHostPort(get('listen-webhook'), 'listen-webhook'),
    webhookCertFile: certFile,
    webhookKeyFile: keyFile,
    webhookDnsNames: Object.freeze(get('webhook-dns-names').split(',').map((n) => n.trim()).filter((n) => n !== '')),
    caDir: get('ca-dir') || undefined,
    workloadCertTtlSeconds: ttl,
    maxWorkloadCertTtlSeconds: maxTtl,
  });
}

/** The environment-variable part of `--help`. */
export function environmentHelp(): string {
  const rows = SETTINGS.map((s) => `  ${s.env.padEnd(30)} --${s.flag.padEnd(22)} default: ${s.default === '' ? '(unset)' : s.default}`);
  return `\nEnvironment variables (a flag overrides its variable):\n${rows.join('\n')}\n`;
}
