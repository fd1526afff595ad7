/**
 * `npm run demo`: a local mesh on the embedded defaults — trellis-control (file registry on demo/config/, built-in
 * CA) and the Bookinfo-style sample app behind Trellis.
 *
 * - As root (`--mode netns`, the default for root): every service host gets its own network namespace
 *   `trellis-demo-<host>` on a bridge `trellis-demo0` (10.250.0.0/24), with trellis-agent (bundle from
 *   `trellisctl vm configure`), the capture rules, the DNS proxy, trellis-proxy as uid 1337 and the app.
 * - Otherwise (`--mode loopback`): the apps on 127.0.0.1 behind one ingress gateway (trellis-proxy --mode gateway)
 *   on 127.0.0.1:8080, which also carries the service-to-service calls.
 *
 * It prints what to try, then waits; SIGINT/SIGTERM (Ctrl-C) removes everything it created. `--self-check` checks
 * the advertised routing, cleans up and exits 0 (or 1). See docs/demo.md.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkRouting, eventually, Fatal, get } from './http-probe.js';
import { must, PREFIX, removeLeftovers, run, Supervisor, type Child } from './supervisor.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CONTROL_BIN = join(ROOT, 'packages/control/bin/trellis-control.js');
const CTL_BIN = join(ROOT, 'packages/control/bin/trellisctl.js');
const AGENT_BIN = join(ROOT, 'packages/node-agent/bin/trellis-agent.js');
const PROXY_BIN = join(ROOT, 'packages/proxy/bin/trellis-proxy.js');
const APP = join(ROOT, 'demo/app/bookinfo.mjs');
const CONFIG = join(ROOT, 'demo/config');
const LOCK = join(tmpdir(), `${PREFIX}.lock`);

/** The service hosts: one WorkloadGroup each in demo/config/workload-groups.yaml. */
const HOSTS = [
  { host: 'productpage', app: 'productpage', version: 'v1' },
  { host: 'details', app: 'details', version: 'v1' },
  { host: 'reviews-v1', app: 'reviews', version: 'v1' },
  { host: 'reviews-v2', app: 'reviews', version: 'v2' },
  { host: 'reviews-v3', app: 'reviews', version: 'v3' },
  { host: 'ratings', app: 'ratings', version: 'v1' },
] as const;
type Host = (typeof HOSTS)[number];

const BRIDGE = `${PREFIX}0`;
const BRIDGE_IP = '10.250.0.1';
const hostIp = (i: number): string => `10.250.0.${10 + i}`;
const LOOPBACK_APP_PORT = (i: number): number => 19080 + i;
const GATEWAY_PORT = 8080;

interface Options {
  readonly mode: 'netns' | 'loopback';
  readonly selfCheck: boolean;
  readonly staticWorkloads: boolean;
  readonly timeoutMs: number;
}

function usage(): never {
  process.stderr.write(`usage: npm run demo -- [--mode auto|netns|loopback] [--self-check] [--static-workloads] [--timeout SECONDS]

  --mode netns      each service host in its own network namespace with capture and DNS (needs root)
  --mode loopback   everything on 127.0.0.1 behind an ingress gateway on :${GATEWAY_PORT} (any user)
  --mode auto       netns as root, loopback otherwise (default)
  --self-check      check the routing it prints, clean up and exit (0 when it works)
  --static-workloads  netns mode: WorkloadEntries in the config instead of the agents' auto-registration
  --timeout S       how long start-up may take (default 120)
`);
  process.exit(2);
}

function parseOptions(argv: readonly string[]): Options {
  let mode = 'auto';
  let selfCheck = false;
  let staticWorkloads = false;
  let timeout = 120;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--mode') mode = argv[++i] ?? '';
    else if (a.startsWith('--mode=')) mode = a.slice(7);
    else if (a === '--self-check') selfCheck = true;
    else if (a === '--static-workloads') staticWorkloads = true;
    else if (a === '--timeout') timeout = Number(argv[++i]);
    else usage();
  }
  const root = process.getuid?.() === 0;
  if (mode === 'auto') mode = root ? 'netns' : 'loopback';
  if (mode !== 'netns' && mode !== 'loopback') usage();
  if (!(timeout > 0)) usage();
  if (mode === 'netns' && !root) {
    process.stderr.write('demo: --mode netns needs root (network namespaces, iptables); run it with sudo or use --mode loopback\n');
    process.exit(2);
  }
  return { mode, selfCheck, staticWorkloads, timeoutMs: timeout * 1000 };
}

const say = (line: string): void => { process.stdout.write(`${line}\n`); };
const T0 = Date.now();
/** `[12.3s]`: time since start, for the progress lines. */
const elapsed = (): string => `[${((Date.now() - T0) / 1000).toFixed(1)}s]`;

/** Starts trellis-control and resolves once every listener is bound and /ready answers 200. */
async function startControl(sup: Supervisor, configDir: string, listenXds: string, timeoutMs: number, signal: AbortSignal): Promise<Child> {
  const child = sup.start('trellis-control', process.execPath, [
    CONTROL_BIN, '--config-dir', configDir, '--state-dir', join(sup.runDir, 'control-state'),
    '--listen-xds-plaintext', '127.0.0.1:15010', '--listen-xds', listenXds, '--listen-http', '127.0.0.1:15014',
  ]);
  await eventually('trellis-control to be ready on http://127.0.0.1:15014/ready', async () => {
    assertAlive(sup, [child]);
    return (await get('http://127.0.0.1:15014/ready', {}, 1000)).status === 200;
  }, timeoutMs, signal);
  return child;
}

function workloadEntries(entries: Array<{ name: string; address: string; app: string; version: string; port?: number; serviceAccount?: string }>): string {
  return entries.map((e) => [
    'apiVersion: networking.istio.io/v1',
    'kind: WorkloadEntry',
    `metadata: {name: ${e.name}, namespace: default}`,
    'spec:',
    `  address: ${e.address}`,
    `  labels: {app: ${e.app}, version: ${e.version}}`,
    ...(e.serviceAccount ? [`  serviceAccount: ${e.serviceAccount}`] : []),
    ...(e.port ? [`  ports: {http: ${e.port}}`] : []),
  ].join('\n')).join('\n---\n') + '\n';
}

/** The run's config directory: demo/config (symlinked, so edits apply live) plus the workloads of this mode. */
function writeConfig(runDir: string, workloads: string): string {
  const dir = join(runDir, 'config');
  mkdirSync(dir);
  symlinkSync(CONFIG, join(dir, 'bookinfo'));
  writeFileSync(join(dir, 'workloads.yaml'), `# Written by the demo for this run (mode-specific addresses).\n${workloads}`);
  return dir;
}

function assertAlive(sup: Supervisor, children: readonly Child[]): void {
  for (const c of children) {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) {
      throw new Fatal(`${c.name} exited (${c.proc.exitCode ?? c.proc.signalCode}); its log ${c.log}:\n${sup.tail(c)}`);
    }
  }
}

async function startLoopback(sup: Supervisor, opts: Options, signal: AbortSignal): Promise<{ productPage: string; tryLines: string[] }> {
  const configDir = writeConfig(sup.runDir, workloadEntries(HOSTS.map((h, i) => ({
    name: h.host, address: '127.0.0.1', app: h.app, version: h.version, port: LOOPBACK_APP_PORT(i),
  }))));
  await startControl(sup, configDir, '127.0.0.1:15012', opts.timeoutMs, signal);
  say(`${elapsed()} trellis-control ready: xDS 127.0.0.1:15010 (plaintext) and 127.0.0.1:15012 (TLS), HTTP 127.0.0.1:15014`);
  const children: Child[] = [];
  HOSTS.forEach((h, i) => {
    children.push(sup.start(`app-${h.host}`, process.execPath, [APP, h.app, '--version', h.version, '--port', String(LOOPBACK_APP_PORT(i)), '--host', '127.0.0.1'], {
      env: { ...process.env, TRELLIS_DEMO_VIA: `127.0.0.1:${GATEWAY_PORT}` },
    }));
  });
  const gateway = sup.start('ingressgateway', process.execPath, [
    PROXY_BIN, '--mode', 'gateway', '--xds-address', '127.0.0.1:15010', '--xds-plaintext', '--sds-socket', '',
    '--namespace', 'default', '--workload-name', 'bookinfo-ingressgateway', '--labels', 'istio=ingressgateway',
    '--ip', '127.0.0.1', '--concurrency', '1', '--drain-time', '1',
  ]);
  children.push(gateway);
  await eventually('the ingress gateway to be ready (http://127.0.0.1:15021/healthz/ready)', async () => {
    assertAlive(sup, children);
    return (await get('http://127.0.0.1:15021/healthz/ready')).status === 200;
  }, opts.timeoutMs, signal);
  const productPage = `http://127.0.0.1:${GATEWAY_PORT}/productpage`;
  return {
    productPage,
    tryLines: [
      'Mode: loopback (no network namespaces, no capture: see docs/demo.md for what that leaves out)',
      '  apps:     productpage, details, reviews v1/v2/v3, ratings on 127.0.0.1:19080-19085 (plaintext)',
      `  gateway:  trellis-proxy --mode gateway on 127.0.0.1:${GATEWAY_PORT} (Gateway bookinfo-gateway); every call between the apps goes through it`,
      '',
      'Try:',
      `  curl -s ${productPage}`,
      `  curl -s -H 'end-user: jason' ${productPage}`,
      '  curl -s http://127.0.0.1:15090/stats/prometheus | grep istio_requests_total',
      `  node ${relative(CTL_BIN)} proxy-status`,
      `  node ${relative(CTL_BIN)} proxy-config routes bookinfo-ingressgateway`,
    ],
  };
}

function relative(p: string): string {
  return p.startsWith(`${process.cwd()}/`) ? p.slice(process.cwd().length + 1) : p;
}

async function startNetns(sup: Supervisor, opts: Options, signal: AbortSignal): Promise<{ productPage: string; tryLines: string[] }> {
  // The bridge in the root namespace: the hosts reach the control plane's TLS port on 10.250.0.1, and the
  // printed curl commands reach the hosts.
  sup.onCleanup(`delete link ${BRIDGE}`, async () => { await run('ip', ['link', 'delete', BRIDGE]); });
  await must('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  await must('ip', ['addr', 'add', `${BRIDGE_IP}/24`, 'dev', BRIDGE]);
  await must('ip', ['link', 'set', BRIDGE, 'up']);

  // No WorkloadEntries: each agent registers its host from its WorkloadGroup when it connects (auto-registration),
  // and the entry goes away 10 s after the agent does. --static-workloads writes them instead.
  const configDir = writeConfig(sup.runDir, opts.staticWorkloads ? workloadEntries(HOSTS.map((h, i) => ({
    name: h.host, address: hostIp(i), app: h.app, version: h.version, serviceAccount: `bookinfo-${h.app}`,
  }))) : '');
  await startControl(sup, configDir, `${BRIDGE_IP}:15012`, opts.timeoutMs, signal);
  say(`${elapsed()} trellis-control ready: xDS 127.0.0.1:15010 (plaintext) and ${BRIDGE_IP}:15012 (TLS, CA), HTTP 127.0.0.1:15014`);

  const children: Child[] = [];
  // Namespaces, links, bundles and capture rules of all hosts at once, then their processes.
  await Promise.all(HOSTS.map(async (h, i) => {
    const ns = `${PREFIX}-${h.host}`;
    const veth = `tdemo${i}`;
    sup.onCleanup(`delete network namespace ${ns}`, async () => {
      const pids = await run('ip', ['netns', 'pids', ns]);
      for (const p of pids.stdout.split('\n').map(Number).filter((n) => n > 0)) {
        try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
      }
      await run('ip', ['netns', 'delete', ns]);
    });
    await must('ip', ['netns', 'add', ns]);
    sup.onCleanup(`delete link ${veth}`, async () => { await run('ip', ['link', 'delete', veth]); });
    await must('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await must('ip', ['link', 'set', veth, 'master', BRIDGE, 'up']);
    const inNs = (...args: string[]) => must('ip', ['netns', 'exec', ns, ...args]);
    await inNs('ip', 'link', 'set', 'lo', 'up');
    await inNs('ip', 'addr', 'add', `${hostIp(i)}/24`, 'dev', 'eth0');
    await inNs('ip', 'link', 'set', 'eth0', 'up');
    // Mesh VIPs (240.240.0.0/16) need a route for connect() to reach the capture rules.
    await inNs('ip', 'route', 'add', 'default', 'via', BRIDGE_IP);

    const dir = join(sup.runDir, h.host);
    mkdirSync(dir, { mode: 0o755 });
    const bundle = join(dir, 'bundle');
    await eventually(`trellisctl vm configure --workload-group ${h.app}-${h.version}`, async () => {
      const r = await run(process.execPath, [CTL_BIN, 'vm', 'configure', '--workload-group', `${h.app}-${h.version}`, '--namespace', 'default',
        '--out', bundle, '--xds-address', `${BRIDGE_IP}:15012`, '--control', 'http://127.0.0.1:15014']);
      if (r.code !== 0 && !r.stderr.includes('TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN')) throw new Error(`vm configure: ${(r.stderr || r.stdout).trim()}`);
      return r.code === 0;
    }, opts.timeoutMs, signal);
    // The proxy (uid 1337) verifies the control plane with the root certificate; the bundle directory is 0700.
    copyFileSync(join(bundle, 'root-cert.pem'), join(dir, 'root-cert.pem'));
    chmodSync(join(dir, 'root-cert.pem'), 0o644);
    await must('ip', ['netns', 'exec', ns, process.execPath, AGENT_BIN, 'iptables', 'install', '--inbound-ports', '9080'], { timeoutMs: 60_000 });
  }));
  say(`${elapsed()} hosts ready: namespaces, bundles, capture rules; starting agents, proxies and apps`);
  for (const [i, h] of HOSTS.entries()) {
    const ns = `${PREFIX}-${h.host}`;
    const dir = join(sup.runDir, h.host);
    // The agent runs as root with the proxy's group (1337): capture leaves its traffic alone, and the SDS socket's
    // group lets the proxy connect.
    children.push(sup.start(`agent-${h.host}`, 'ip', ['netns', 'exec', ns, process.execPath, AGENT_BIN,
      '--bundle', join(dir, 'bundle'), '--state-dir', join(dir, 'agent-state'), '--sds-socket', join(dir, 'sds', 'socket'),
      '--socket-group', '1337', '--listen-http', '127.0.0.1:15020', '--dns-listen', '127.0.0.1:15053'], { gid: 1337 }));
    children.push(sup.start(`proxy-${h.host}`, 'ip', ['netns', 'exec', ns, 'setpriv', '--reuid', '1337', '--regid', '1337', '--clear-groups',
      process.execPath, PROXY_BIN, '--xds-address', `${BRIDGE_IP}:15012`, '--xds-root-cert', join(dir, 'root-cert.pem'),
      '--sds-socket', join(dir, 'sds', 'socket'), '--namespace', 'default', '--workload-name', h.host,
      '--service-account', `bookinfo-${h.app}`, '--labels', `app=${h.app},version=${h.version}`, '--ip', hostIp(i), '--concurrency', '1', '--drain-time', '1'],
    { env: { ...process.env, HOME: '/tmp' } }));
    children.push(sup.start(`app-${h.host}`, 'ip', ['netns', 'exec', ns, process.execPath, APP, h.app, '--version', h.version, '--port', '9080']));
  }
  for (const [i, h] of HOSTS.entries()) {
    await eventually(`the proxy of ${h.host} to be ready (http://${hostIp(i)}:15021/healthz/ready)`, async () => {
      assertAlive(sup, children);
      return (await get(`http://${hostIp(i)}:15021/healthz/ready`)).status === 200;
    }, opts.timeoutMs, signal);
  }
  say(`${elapsed()} every proxy ready (certificates from the agents, config from the control plane)`);
  const productPage = `http://${hostIp(0)}:9080/productpage`;
  const reviewsV1 = HOSTS.findIndex((h) => h.host === 'reviews-v1');
  return {
    productPage,
    tryLines: [
      `Mode: network namespaces (bridge ${BRIDGE} ${BRIDGE_IP}/24; capture and DNS in every host)`,
      ...HOSTS.map((h, i) => `  ${`${PREFIX}-${h.host}`.padEnd(27)} ${hostIp(i).padEnd(12)} ${h.app} ${h.version}: trellis-agent, trellis-proxy (uid 1337), app :9080`),
      '',
      'Try:',
      `  curl -s ${productPage}`,
      `  curl -s -H 'end-user: jason' ${productPage}`,
      `  ip netns exec ${PREFIX}-productpage curl -s http://reviews.default.svc.cluster.local:9080/reviews/0`,
      `  curl -s http://${hostIp(reviewsV1)}:15090/stats/prometheus | grep istio_requests_total`,
      `  node ${relative(CTL_BIN)} proxy-status`,
      `  node ${relative(CTL_BIN)} proxy-config routes productpage`,
    ],
  };
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const root = process.getuid?.() === 0;
  await removeLeftovers(say, LOCK, root);
  const runDir = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
  chmodSync(runDir, 0o755);
  mkdirSync(join(runDir, 'logs'));
  writeFileSync(LOCK, `${process.pid}\n`);
  const sup = new Supervisor(runDir, say);
  sup.onCleanup('remove lock', () => rmSync(LOCK, { force: true }));
  sup.onCleanup(`remove ${runDir}`, () => rmSync(runDir, { recursive: true, force: true }));

  const abort = new AbortController();
  let stopping: Promise<number> | undefined;
  const stop = (why: string, code: number): Promise<number> => {
    stopping ??= (async () => {
      abort.abort();
      say(`\n${why}: removing everything the demo created…`);
      await sup.cleanup();
      say('demo stopped; everything removed.');
      return code;
    })();
    return stopping;
  };
  const signalled = new Promise<number>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { void stop(sig, 0).then(resolve); });
  });

  say(`Trellis demo (${opts.mode} mode); run directory ${runDir} (logs in ${join(runDir, 'logs')})`);
  try {
    const started = await Promise.race([
      (opts.mode === 'netns' ? startNetns : startLoopback)(sup, opts, abort.signal),
      signalled.then(() => null),
    ]);
    if (started === null) return await signalled;
    const seen = await checkRouting(started.productPage, opts.timeoutMs, abort.signal);
    say(`${elapsed()} routing checked: no header → reviews ${seen.anonymous}, end-user: jason → reviews ${seen.jason}`);
    say('');
    for (const line of started.tryLines) say(line);
    say('');
    say(`Edit ${relative(join(CONFIG, 'virtual-services.yaml'))} to change the routing live.`);
    if (opts.selfCheck) return await stop('self-check passed', 0);
    say('demo ready. Press Ctrl-C to stop and remove everything.');
    return await signalled;
  } catch (err) {
    if (abort.signal.aborted) return await (stopping ?? signalled);
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    return await stop('start-up failed', 1);
  }
}

// Keep the process alive while waiting for a signal, and don't let a closed stdout kill the cleanup.
process.stdout.on('error', () => { /* the reader went away; keep cleaning up */ });
const keepAlive = setInterval(() => { /* waiting for Ctrl-C */ }, 1 << 30);
main().then((code) => {
  clearInterval(keepAlive);
  process.exit(code);
}, (err: unknown) => {
  process.stderr.write(`demo: ${(err as Error).message}\n`);
  process.exit(1);
});
