/** trellis-proxy: flags (or the environment, see env.ts) → a Proxy; SIGTERM drains and exits. */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import { SystemdNotifier } from '@trellis/native';
import { PROXY_ENV, envFor } from './env.js';
import { createLogger, isLogLevel } from './log.js';
import { GatewayCredentials } from './gateway/credentials.js';
import { Proxy } from './proxy.js';
import { runPrimary, reportWorkerPorts, reportWorkerReady } from './workers.js';
import { nodeIdentity } from './xds/node.js';

function firstIp(): string {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--labels: "${kv}" is not k=v`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

function port(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name}: "${v}" is not a port`);
  return n;
}

/** --access-log / --trace-sampling / --zipkin → ProxyOptions (exits 2 on a bad value). */
function telemetryOptions(o: Record<string, string | boolean | undefined>): Pick<ConstructorParameters<typeof Proxy>[0], 'accessLog' | 'accessLogEncoding' | 'tracing'> {
  const bad = (msg: string): never => { process.stderr.write(`${msg}\n`); process.exit(2); };
  const al = o.accessLog === undefined || o.accessLog === '' ? undefined : String(o.accessLog);
  if (al !== undefined && al !== 'off' && !al.startsWith('/')) bad(`--access-log: "${al}" is not an absolute path, /dev/stdout or off`);
  const ts = o.traceSampling === undefined || o.traceSampling === '' ? undefined : Number(o.traceSampling);
  if (ts !== undefined && !(ts >= 0 && ts <= 100)) bad(`--trace-sampling: "${String(o.traceSampling)}" is not a percentage 0-100`);
  const zipkin = o.zipkin ? String(o.zipkin) : undefined;
  if (zipkin !== undefined && !/^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}$/.test(zipkin)) bad(`--zipkin: "${zipkin}" is not HOST:PORT`);
  return { accessLog: al, accessLogEncoding: String(o.accessLogEncoding).toUpperCase() === 'TEXT' ? 'TEXT' : 'JSON', tracing: ts === undefined && zipkin === undefined ? undefined : { sampling: ts, zipkin } };
}

const program = new Command('trellis-proxy').description('Trellis data-plane proxy (Envoy xDS v3 / SDS v3 client)')
  .addHelpText('after', '\nEnvironment (a flag wins):\n' + PROXY_ENV.map((e) => `  ${e.name.padEnd(26)} ${e.flag.padEnd(30)} ${e.description} [${e.default}]`).join('\n'));
const d = (flag: string, dflt: string) => envFor(flag) ?? dflt;
program
  .option('--xds-address <host:port>', 'control plane ADS address', d('--xds-address', 'localhost:15012'))
  .option('--xds-plaintext', 'plaintext gRPC to the control plane', d('--xds-plaintext', 'false') === 'true')
  .option('--xds-root-cert <file>', 'PEM bundle verifying the control plane', d('--xds-root-cert', '/var/run/trellis/root-cert.pem'))
  .option('--sds-socket <path>', 'node agent SDS Unix socket ("" disables SDS)', d('--sds-socket', '/var/run/trellis/sds/socket'))
  .option('--node-id <id>', 'xDS node id', envFor('--node-id'))
  .option('--namespace <ns>', 'workload namespace', d('--namespace', 'default'))
  .option('--workload-name <name>', 'workload name', d('--workload-name', hostname()))
  .option('--labels <k=v,...>', 'workload labels', d('--labels', ''))
  .option('--service-account <sa>', 'service account', d('--service-account', 'default'))
  .option('--ip <ip>', 'this host IP', d('--ip', firstIp()))
  .option('--cluster-id <id>', 'CLUSTER_ID', d('--cluster-id', 'Kubernetes'))
  .option('--network <name>', 'NETWORK', d('--network', ''))
  .option('--trust-domain <td>', 'SPIFFE trust domain', d('--trust-domain', 'cluster.local'))
  .addOption(new Option('--mode <mode>', 'sidecar | gateway').choices(['sidecar', 'gateway']).default(d('--mode', 'sidecar')))
  .option('--outbound-port <n>', 'virtualOutbound port', d('--outbound-port', '15001'))
  .option('--inbound-port <n>', 'virtualInbound port', d('--inbound-port', '15006'))
  .option('--admin-port <n>', 'admin port', d('--admin-port', '15000'))
  .option('--prometheus-port <n>', 'Prometheus port', d('--prometheus-port', '15090'))
  .option('--health-port <n>', 'health port', d('--health-port', '15021'))
  .option('--drain-time <s>', 'drain seconds on SIGTERM', d('--drain-time', '5'))
  .option('--protocol-detection-timeout <ms>', 'first-bytes wait', d('--protocol-detection-timeout', '100'))
  .option('--gateway-credentials <dir>', 'gateway credentialName files: <dir>/<name>/tls.crt, tls.key, ca.crt', d('--gateway-credentials', ''))
  .option('--listener-address <ip>', 'bind LDS listeners on this IP instead of their own', d('--listener-address', ''))
  .option('--log-level <level>', 'log level', d('--log-level', 'info'))
  .option('--access-log <file|off>', 'access log FILE (/dev/stdout) for all traffic, or off (default: as the control plane says)', envFor('--access-log'))
  .addOption(new Option('--access-log-encoding <enc>', 'format of --access-log').choices(['JSON', 'TEXT', 'json', 'text']).default(d('--access-log-encoding', 'JSON')))
  .option('--trace-sampling <percent>', 'percent of new traces sampled (default: as the control plane says, else 1)', envFor('--trace-sampling'))
  .option('--zipkin <host:port>', 'Zipkin collector (default: as the control plane says)', envFor('--zipkin'))
  .option('--concurrency <n>', 'worker processes sharing the listeners', d('--concurrency', '2'));

program.parse();
const o = program.opts<Record<string, string | boolean | undefined>>();
const level = String(o.logLevel);
if (!isLogLevel(level)) { process.stderr.write(`--log-level: unknown level ${level}\n`); process.exit(2); }
const logger = createLogger(level);
// Checked here, before workers are forked: a bad telemetry flag is the operator's mistake, not a worker crash loop.
const telemetry = telemetryOptions(o);

// A proxy must not go down with one request: log a bug in a handler and keep serving the others.
process.on('uncaughtException', (err) => logger.error('uncaught exception (bug): request dropped', { error: err.stack ?? String(err) }));

const concurrency = Number(o.concurrency);
if (!Number.isInteger(concurrency) || concurrency < 1) { process.stderr.write(`--concurrency: "${String(o.concurrency)}" is not a positive integer\n`); process.exit(2); }
const isWorker = cluster.isWorker && process.env.TRELLIS_WORKER === '1';
const systemd = new SystemdNotifier({ onError: (state, err) => logger.warn('systemd notify failed', { state, error: (err as Error).message }) });

if (concurrency > 1 && cluster.isPrimary) {
  await runPrimary({
    concurrency, logger, notifier: systemd, drainTimeMs: Number(o.drainTime) * 1000, adminAddress: '127.0.0.1', statusAddress: '0.0.0.0',
    ports: { admin: port('--admin-port', String(o.adminPort)), prometheus: port('--prometheus-port', String(o.prometheusPort)), health: port('--health-port', String(o.healthPort)) },
  });
} else try {
  const credentials = o.xdsPlaintext ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(readFileSync(String(o.xdsRootCert)));
  const node = nodeIdentity({
    mode: o.mode === 'gateway' ? 'gateway' : 'sidecar', ip: String(o.ip), workloadName: String(o.workloadName), namespace: String(o.namespace),
    serviceAccount: String(o.serviceAccount), labels: parseLabels(String(o.labels)), clusterId: String(o.clusterId), network: String(o.network), nodeId: o.nodeId ? String(o.nodeId) : undefined,
  });
  const proxy = new Proxy({
    node, logger,
    xds: { target: String(o.xdsAddress), credentials },
    sdsSocket: o.sdsSocket ? String(o.sdsSocket) : null,
    ports: isWorker
      // workers: private status ports on loopback; the primary owns the public ones and asks the workers
      ? { outbound: port('--outbound-port', String(o.outboundPort)), inbound: port('--inbound-port', String(o.inboundPort)), admin: 0, prometheus: 0, health: 0 }
      : { outbound: port('--outbound-port', String(o.outboundPort)), inbound: port('--inbound-port', String(o.inboundPort)), admin: port('--admin-port', String(o.adminPort)), prometheus: port('--prometheus-port', String(o.prometheusPort)), health: port('--health-port', String(o.healthPort)) },
    ...(isWorker ? { statusAddress: '127.0.0.1' } : {}),
    ...(o.listenerAddress ? { bindAddress: String(o.listenerAddress) } : {}),
    detectionTimeoutMs: Number(o.protocolDetectionTimeout), drainTimeMs: Number(o.drainTime) * 1000,
    trustDomain: String(o.trustDomain), namespace: String(o.namespace), serviceAccount: String(o.serviceAccount), workloadName: String(o.workloadName),
    ...telemetry,
  });
  // Secrets named by gateway servers (credentialName, file-cert:/file-root:) come from files, not from the agent.
  const credentialsAbort = new AbortController();
  new GatewayCredentials({ store: proxy.store, logger, dir: o.gatewayCredentials ? String(o.gatewayCredentials) : null }).start(credentialsAbort.signal);
  await proxy.start();
  // WatchdogSec= in the unit: WATCHDOG=1 every half of WATCHDOG_USEC (the primary pings for a worker pool).
  if (!isWorker) systemd.startWatchdog();
  if (isWorker) reportWorkerPorts({ admin: proxy.adminPort, prometheus: proxy.prometheusPort, health: proxy.healthPort });
  logger.info('trellis-proxy started', { node: node.id, xds: o.xdsAddress, admin: proxy.adminPort, prometheus: proxy.prometheusPort, health: proxy.healthPort });
  void proxy.whenReady().then(() => { logger.info('first complete config applied; ready', { listeners: proxy.listeners.ports(), worker: isWorker ? cluster.worker?.id : undefined }); if (isWorker) reportWorkerReady(); else systemd.ready('first complete config applied'); });
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('draining', { signal: sig, drainTimeSeconds: o.drainTime });
    if (!isWorker) systemd.stopping();
    credentialsAbort.abort();
    proxy.shutdown().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (err) {
  logger.error('cannot start', { error: (err as Error).message });
  process.exit(1);
}
