/**
 * `trellis-control`: the control plane process. The only module that wires the parts together:
 * registries → aggregate → snapshots (debounced) → ADS server (plaintext and/or TLS, with the CA's CSR service),
 * and the HTTP port (/metrics, /ready, /debug/*, the CA's token API).
 *
 * Start-up errors print one line `TRELLIS_ERR_…: message` on stderr and exit 1. SIGTERM/SIGINT close streams,
 * servers and watchers and exit 0.
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Command, CommanderError } from 'commander';
import { TrellisError, type RegistryAdapter } from '@trellis/model';
import { FileRegistry, parseResourceText } from '@trellis/registry-adapters/file';
import { Aggregate } from './aggregate/aggregate.js';
import { addCertificateService, CertificateAuthority, JoinTokens, serverCredentials, tokenRoutes } from './ca/index.js';
import { createLogger, type LogFn } from './config/logger.js';
import type { MeshConfigLike } from './config/mesh-settings.js';
import { environmentHelp, resolveSettings, SETTINGS, type ControlSettings, type HostPort } from './config/settings.js';
import { SystemdNotifier } from '@trellis/native';
import { debugRoutes } from './http/debug-routes.js';
import { ServiceExportFeed } from './http/export-routes.js';
import { webhookRoutes } from './http/webhook.js';
import { webhookTls } from './http/webhook-tls.js';
import { ControlMetrics } from './http/metrics.js';
import { HttpServer, listenError, type HttpRoute } from './http/server.js';
import { generators } from './generate/index.js';
import { SnapshotController } from './snapshot/controller.js';
import { AdsServer } from './xds/ads-server.js';
import { AutoRegistration } from './autoregister/index.js';
import { RegistryManager, registryDeclarations } from './registries/index.js';

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

function parseArgs(argv: readonly string[]): Record<string, unknown> {
  const program = new Command('trellis-control')
    .description('Trellis control plane: merges registries, serves Envoy xDS v3 over ADS, runs the mesh CA.')
    .version(VERSION)
    .exitOverride()
    .addHelpText('after', environmentHelp());
  for (const s of SETTINGS) program.option(`--${s.flag} <${s.arg.toLowerCase()}>`, `${s.description} [env ${s.env}]`);
  program.parse([...argv]);
  return program.opts();
}

function hp(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function checkDir(dir: string, what: string): void {
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.R_OK | constants.X_OK);
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (cause as Error).message.includes('not a directory') ? 'is not a directory' : 'is not readable';
    throw new TrellisError('TRELLIS_ERR_CONFIG_DIR', `${what} ${dir} ${reason}`, { cause });
  }
}

async function loadMeshFile(file: string): Promise<MeshConfigLike> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_MESH_CONFIG', `--mesh-config ${file}: ${(cause as Error).message}`, { cause });
  }
  const parsed = parseResourceText(text, file, { source: { kind: 'control', shard: 'mesh-config' } });
  if (parsed.problems.length > 0) {
    const p = parsed.problems[0];
    throw new TrellisError('TRELLIS_ERR_MESH_CONFIG', `${file}${p.line ? `:${p.line}` : ''}: ${p.path ? `${p.path}: ` : ''}${p.message}`);
  }
  const mc = parsed.resources.find((r) => r.kind === 'MeshConfig');
  if (!mc) throw new TrellisError('TRELLIS_ERR_MESH_CONFIG', `${file}: holds no MeshConfig resource`);
  return mc as MeshConfigLike;
}

function bindGrpc(server: grpc.Server, addr: HostPort, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((res, rej) => {
    server.bindAsync(hp(addr), creds, (err, port) => (err ? rej(listenError(addr.host, addr.port, err)) : res(port)));
  });
}

async function run(settings: ControlSettings, log: LogFn): Promise<() => Promise<void>> {
  /** Listener addresses are printed whatever the log level: scripts and tests read the bound ports from them. */
  const announce = createLogger('debug');
  if (settings.configDir) checkDir(settings.configDir, '--config-dir');
  try {
    mkdirSync(settings.stateDir, { recursive: true });
    accessSync(settings.stateDir, constants.W_OK);
  } catch (cause) {
    if (settings.listenXds) throw new TrellisError('TRELLIS_ERR_STATE_DIR', `--state-dir ${settings.stateDir} is not writable (${(cause as Error).message})`, { cause });
    log('warn', 'state dir not writable; VIP table kept in memory', { stateDir: settings.stateDir });
  }
  const meshFile = settings.meshConfigFile ? await loadMeshFile(settings.meshConfigFile) : undefined;

  const stop = new AbortController();
  const cleanups: (() => Promise<void> | void)[] = [() => stop.abort()];
  let controller: SnapshotController | undefined;
  const aggregate = new Aggregate({ onChange: () => controller?.changed(), log });
  controller = new SnapshotController({
    aggregate,
    meshDefaults: { trustDomain: settings.trustDomain, clusterId: settings.clusterId, network: settings.network },
    meshFile,
    stateDir: settings.stateDir,
    debounceAfterMs: settings.debounceAfterMs,
    debounceMaxMs: settings.debounceMaxMs,
    log,
  });
  const snapshots = controller;
  cleanups.push(() => snapshots.close());

  const autoreg = new AutoRegistration({ aggregate, snapshots, graceMs: settings.workloadEntryGraceMs, log });
  cleanups.push(() => autoreg.close());
  const ads = new AdsServer({
    streams: autoreg.streams,
    generators,
    snapshots: { current: () => snapshots.current?.snapshot },
    identifier: `trellis-control/${VERSION}`,
    log,
  });
  const exportFeed = new ServiceExportFeed(() => snapshots.current?.snapshot);
  snapshots.subscribe((s) => {
    log('info', 'snapshot', { version: s.version, services: s.services.length });
    ads.onSnapshot();
    exportFeed.onSnapshot();
  });
  cleanups.push(() => exportFeed.close());
  cleanups.push(() => ads.close());

  const metrics = new ControlMetrics({
    connectedProxies: () => ads.connectionCount,
    shards: () => aggregate.shards(),
    conflicts: () => snapshots.current?.view.conflicts.length ?? 0,
    configErrors: () => aggregate.shards().reduce((n, s) => n + s.status.problems.length, 0),
  });
  cleanups.push(() => metrics.close());
  autoreg.useMetrics(metrics.registry);

  const adapters: RegistryAdapter[] = [];
  if (settings.configDir) adapters.push(new FileRegistry({ dir: resolve(settings.configDir) }));
  for (const a of adapters) aggregate.addShard(a.shard, a.kind);
  // Registry resources (--mesh-config file, config dir, Istio CRDs) become adapters; see registries/manager.ts.
  const registries = new RegistryManager({
    aggregate, log, env: process.env, baseDir: settings.configDir ? resolve(settings.configDir) : process.cwd(),
    fixed: settings.meshConfigFile ? registryDeclarations(settings.meshConfigFile) : [],
  });
  registries.reconcile([]);
  snapshots.subscribe(() => registries.reconcile(snapshots.current?.view.configs ?? []));
  cleanups.push(() => registries.close());

  const httpRoutes: HttpRoute[] = debugRoutes({
    state: () => snapshots.current,
    liveView: () => aggregate.view(snapshots.current?.snapshot.mesh.registryPriority ?? ['kubernetes', 'file', 'consul', 'eureka']),
    notReadyReason: () => snapshots.notReadyReason(),
    ads,
    metrics,
    version: VERSION,
  });
  httpRoutes.push(...autoreg.routes, ...exportFeed.routes());

  // The CA serves the TLS xDS port and, unless --webhook-cert is given, the webhook port's certificate.
  const authority = settings.listenXds || (settings.listenWebhook && !settings.webhookCertFile)
    ? await CertificateAuthority.open({
      stateDir: settings.stateDir, trustDomain: settings.trustDomain, pluginDir: settings.caDir,
      workloadTtlSeconds: settings.workloadCertTtlSeconds, maxTtlSeconds: settings.maxWorkloadCertTtlSeconds,
    })
    : undefined;
  if (authority) log('info', 'ca loaded', { source: authority.source, caNotAfter: authority.caNotAfter.toISOString(), workloadCertTtlSeconds: authority.workloadTtlSeconds, maxWorkloadCertTtlSeconds: authority.maxTtlSeconds });
  if (settings.listenXds && authority) {
    const listen = settings.listenXds;
    const tokens = await JoinTokens.open({ stateDir: settings.stateDir });
    autoreg.useAuthority(authority);
    // Keepalive pings notice a host that vanished without closing its streams (its WorkloadEntry's grace then runs).
    const server = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000 });
    ads.addTo(server);
    addCertificateService(server, {
      ca: authority, tokens, metrics: metrics.registry, authenticators: [registries.authenticator()],
      logger: { info: (m, f) => log('info', m, f), warn: (m, f) => log('warn', m, f) },
    });
    const ips = ['127.0.0.1', ...(listen.host !== '0.0.0.0' && listen.host !== '::' && /^[\d.:]+$/.test(listen.host) && listen.host !== '127.0.0.1' ? [listen.host] : [])];
    const tls = serverCredentials(authority, { dnsNames: ['trellis-control', 'istiod', 'localhost', hostname()], ipAddresses: ips }, {
      onError: (err) => log('error', 'serving certificate rotation failed', { error: (err as Error).message }),
    });
    const port = await bindGrpc(server, listen, tls.credentials);
    announce('info', 'listening', { listener: 'xds', address: hp({ host: listen.host, port }) });
    cleanups.push(() => shutdownGrpc(server), () => tls.close());
    httpRoutes.push(...tokenRoutes({
      tokens, ca: authority,
      lookupWorkloadGroup: (ns, name) => {
        const wg = snapshots.current?.snapshot.config.workloadGroups.find((g) => g.metadata.namespace === ns && g.metadata.name === name);
        if (!wg) return undefined;
        const sa = (wg.spec as { template?: { serviceAccount?: string } }).template?.serviceAccount;
        return { serviceAccount: sa || 'default' };
      },
      mesh: () => {
        const m = snapshots.current?.snapshot.mesh;
        return {
          trustDomain: m?.trustDomain ?? settings.trustDomain, clusterId: m?.clusterId ?? settings.clusterId,
          network: m?.network ?? settings.network, xdsAddress: hp({ host: listen.host, port }),
        };
      },
    }));
  }
  if (settings.listenXdsPlaintext) {
    const server = new grpc.Server();
    ads.addTo(server);
    const port = await bindGrpc(server, settings.listenXdsPlaintext, grpc.ServerCredentials.createInsecure());
    announce('info', 'listening', { listener: 'xds-plaintext', address: hp({ host: settings.listenXdsPlaintext.host, port }) });
    cleanups.push(() => shutdownGrpc(server));
  }
  if (settings.listenHttp) {
    const http = new HttpServer(httpRoutes, log);
    const addr = await http.listen(settings.listenHttp.host, settings.listenHttp.port);
    announce('info', 'listening', { listener: 'http', address: hp({ host: settings.listenHttp.host, port: addr.port }) });
    cleanups.push(() => http.close());
  }
  if (settings.listenWebhook) {
    const listen = settings.listenWebhook;
    let https: HttpServer | undefined;
    const ips = ['127.0.0.1', ...(listen.host !== '0.0.0.0' && listen.host !== '::' && /^[\d.:]+$/.test(listen.host) && listen.host !== '127.0.0.1' ? [listen.host] : [])];
    const tls = webhookTls(
      settings.webhookCertFile && settings.webhookKeyFile
        ? { kind: 'files', certFile: settings.webhookCertFile, keyFile: settings.webhookKeyFile }
        : { kind: 'ca', ca: authority!, dnsNames: ['trellis-control', 'istiod', 'localhost', hostname(), ...settings.webhookDnsNames], ipAddresses: ips },
      (next) => https?.setSecureContext(next),
      (err) => log('error', 'webhook certificate reload failed', { error: (err as Error).message }),
    );
    cleanups.push(() => tls.close());
    https = new HttpServer([...webhookRoutes({ log }), ...exportFeed.routes()], log, tls.initial);
    const addr = await https.listen(listen.host, listen.port);
    announce('info', 'listening', { listener: 'webhook', address: hp({ host: listen.host, port: addr.port }), certificate: tls.describe });
    const server = https;
    cleanups.push(() => server.close());
  }

  // READY=1 once every listener is bound (above) and the first snapshot is built; STOPPING=1 at shutdown.
  const notifier = new SystemdNotifier({ onError: (state, err) => log('warn', 'sd_notify failed', { state, error: (err as Error).message }) });
  let announced = false;
  const announceReady = (s: { version: string; services: readonly unknown[] }): void => {
    if (announced) return;
    announced = true;
    notifier.ready(`serving snapshot ${s.version} (${s.services.length} services, ${ads.connectionCount} proxies)`);
    notifier.startWatchdog();
  };
  const first = snapshots.current?.snapshot;
  if (first) announceReady(first);
  else {
    const off = snapshots.subscribe((s) => { off(); announceReady(s); });
  }
  cleanups.push(() => notifier.stopping()); // cleanups run last-first: STOPPING=1 goes out before anything closes

  for (const a of adapters) {
    log('info', 'registry started', { shard: a.shard, kind: a.kind });
    void aggregate.run(a, stop.signal);
  }
  if (adapters.length === 0) snapshots.buildNow();

  return async () => {
    for (const c of cleanups.reverse()) {
      try { await c(); } catch (err) { log('warn', 'shutdown step failed', { error: (err as Error).message }); }
    }
  };
}

/**
 * The one stderr line of a start-up error. By code, not class: the CA's errors are `@trellis/api`'s TrellisError,
 * another class than `@trellis/model`'s.
 */
function errorLine(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return `${typeof code === 'string' && code.startsWith('TRELLIS_ERR_') ? `${code}: ` : ''}${(err as Error).message}\n`;
}

function shutdownGrpc(server: grpc.Server): Promise<void> {
  return new Promise((res) => {
    const t = setTimeout(() => { server.forceShutdown(); res(); }, 2000);
    server.tryShutdown(() => { clearTimeout(t); res(); });
  });
}

async function main(): Promise<void> {
  let flags: Record<string, unknown>;
  try {
    flags = parseArgs(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    throw err;
  }
  let settings: ControlSettings;
  try {
    settings = resolveSettings(flags, process.env);
  } catch (err) {
    process.stderr.write(errorLine(err));
    process.exit(1);
  }
  const log = createLogger(settings.logLevel);
  let close: () => Promise<void>;
  try {
    close = await run(settings, log);
  } catch (err) {
    process.stderr.write(errorLine(err));
    process.exit(1);
  }
  log('info', 'started', { version: VERSION, pid: process.pid });
  let stopping = false;
  const onSignal = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log('info', 'shutting down', { signal: sig });
    void close().then(() => {
      log('info', 'stopped', {});
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

await main();
