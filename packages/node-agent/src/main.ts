/**
 * trellis-agent: the node agent's one composition root.
 *
 * Exit codes: 0 on SIGTERM/SIGINT; 2 for bad flags or a bad bundle; 3 when a new join token is needed (no valid
 * certificate and no unused token, or the CA refused the token); 1 for anything else.
 */
import { Command, Option } from 'commander';
import { TrellisError } from '@trellis/api';
import { readBundle } from './bundle.js';
import { CertificateManager } from './certificate-manager.js';
import { HealthServer } from './http-server.js';
import { MeshDns } from './mesh-dns.js';
import { ensureStateDir } from './identity.js';
import { createAgentMetrics } from './metrics.js';
import { combineObservers, type Logger } from './observer.js';
import { AGENT_SETTINGS, parseDurationSeconds, parseHostPort, resolveAgentOptions, type AgentOptions } from './options.js';
import { SdsServer, trustBundle } from './sds-server.js';
import { SystemdNotifier } from '@trellis/native';
import { registerIptablesCommand } from './cli/iptables.js';
import { WorkloadRegistrar } from './registration/index.js';

function jsonLogger(stream: NodeJS.WritableStream): Logger {
  const write = (level: string) => (message: string, fields?: Record<string, unknown>): void => {
    stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields })}\n`);
  };
  return { info: write('info'), warn: write('warn'), error: write('error') };
}

export async function runAgent(options: AgentOptions, logger: Logger, signal: AbortSignal): Promise<void> {
  const listen = parseHostPort(options.listenHttp, '--listen-http');
  const validitySeconds = parseDurationSeconds(options.certTtl, '--cert-ttl');
  const bundle = readBundle(options.bundle);
  ensureStateDir(options.stateDir);
  const notifier = new SystemdNotifier({ onError: (state, err) => logger.warn('systemd notify failed', { state, error: (err as Error).message }) });
  const metrics = createAgentMetrics(Date.now, { defaultMetrics: true });
  const observer = combineObservers(metrics.observer);
  const sds = new SdsServer({ socketPath: options.sdsSocket, socketGroup: options.socketGroup, logger, observer });
  const manager = new CertificateManager({ bundle, stateDir: options.stateDir, validitySeconds, logger, observer });
  const dnsListen = options.dnsListen === 'off' ? undefined : parseHostPort(options.dnsListen, '--dns-listen');
  const dns = dnsListen ? new MeshDns({ bundle, host: dnsListen.host, port: dnsListen.port, logger }) : undefined;
  const registrar = WorkloadRegistrar.create({ bundle, workloadIp: options.workloadIp, locality: options.locality, labels: options.workloadLabels, logger });
  let serving = false;
  const notReadyReason = (): string | null => {
    const identity = manager.current();
    if (!identity) return 'no certificate yet';
    if (!serving) return 'SDS not serving yet';
    if (identity.notAfter <= Date.now()) return `certificate expired at ${new Date(identity.notAfter).toISOString()}`;
    return null;
  };
  const health = new HealthServer({ host: listen.host, port: listen.port, registry: metrics.registry, notReadyReason });
  await health.listen();
  logger.info('health and metrics listening', { address: `${health.address.address}:${health.address.port}` });
  try {
    await dns?.start(signal);
    notifier.status('obtaining the workload certificate');
    const identity = await manager.initialize(signal);
    dns?.useIdentity(identity, signal);
    registrar?.start(signal);
    registrar?.useIdentity(identity, signal);
    manager.onIdentity((next) => {
      dns?.useIdentity(next, signal);
      registrar?.useIdentity(next, signal);
      sds.update({ identity: next, rootsPem: trustBundle(bundle.rootCertsPem, next) });
      notifier.status(`serving ${next.spiffeId}, certificate valid until ${new Date(next.notAfter).toISOString()}`);
    });
    sds.update({ identity, rootsPem: trustBundle(bundle.rootCertsPem, identity) });
    await sds.listen();
    serving = true;
    notifier.ready(`serving ${identity.spiffeId}, certificate valid until ${new Date(identity.notAfter).toISOString()}`);
    notifier.startWatchdog(() => notReadyReason() === null, signal);
    await manager.run(signal);
  } finally {
    notifier.stopping();
    await sds.close();
    await dns?.close();
    registrar?.close();
    await health.close();
  }
}

function exitCodeFor(error: unknown): number {
  const code = (error as { code?: string }).code;
  if (code === 'TRELLIS_ERR_TOKEN_NEEDED' || code === 'TRELLIS_ERR_TOKEN_REFUSED') return 3;
  if (code === 'TRELLIS_ERR_CONFIG') return 2;
  return 1;
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('trellis-agent')
    .description('Trellis node agent: workload certificate from the mesh CA, rotation, Envoy SDS on a Unix socket.')
    .showHelpAfterError();
  for (const s of AGENT_SETTINGS) {
    program.addOption(new Option(s.flag, `${s.description} (default ${JSON.stringify(s.default)})`).env(s.env));
  }
  registerIptablesCommand(program);
  program.action(async () => {
    const options = resolveAgentOptions(program.opts<Partial<Record<keyof AgentOptions, string>>>(), process.env);
    const logger = jsonLogger(process.stderr);
    const controller = new AbortController();
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => {
        logger.info('stopping', { signal: sig });
        controller.abort();
      });
    }
    try {
      await runAgent(options, logger, controller.signal);
      process.exitCode = 0;
    } catch (e) {
      if (controller.signal.aborted) return;
      const message = e instanceof TrellisError ? e.message : (e as Error).stack ?? String(e);
      process.stderr.write(`trellis-agent: ${message}\n`);
      process.exitCode = exitCodeFor(e);
    }
  });
  await program.parseAsync(argv);
}

await main(process.argv);
