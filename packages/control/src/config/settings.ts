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

/** `100ms`, `1s`, `1.5s`, `2m`, or a bare number of milliseconds. */
export function parseDurationMs(text: string, setting: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new TrellisError('TRELLIS_ERR_CONFIG', `--${setting} ${JSON.stringify(text)}: expected a duration like 100ms, 1s, 2m`);
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n;
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
  });
}

/** The environment-variable part of `--help`. */
export function environmentHelp(): string {
  const rows = SETTINGS.map((s) => `  ${s.env.padEnd(30)} --${s.flag.padEnd(22)} default: ${s.default === '' ? '(unset)' : s.default}`);
  return `\nEnvironment variables (a flag overrides its variable):\n${rows.join('\n')}\n`;
}
