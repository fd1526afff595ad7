/**
 * Registry benchmark: one fake registry (Consul, Eureka or Kubernetes, from `@trellis/testing`, in this process)
 * loaded with S services and I instances, declared to a `trellis-control` child process as a `Registry` resource.
 *
 * Reports per registry:
 *   - first full sync: from spawning the control plane until an ADS client (a sidecar, `AdsTestClient`) has received
 *     and ACKed a CDS response with all S clusters (includes process start, the adapter's full read, the merge,
 *     the debounce and generation); and until `/debug/registryz` shows the shard with all I workloads;
 *   - change → xDS push: one instance added to one service in the registry, until the client received (and ACKed)
 *     the ClusterLoadAssignment holding it (median and max of the rounds). Eureka's includes its delta period
 *     (`deltaInterval`, set to 1 s here; 30 s by default);
 *   - control plane RSS (`VmRSS`) after the first sync and at the end.
 *
 *   node --import tsx bench/registries.ts [--registry consul|eureka|kubernetes|all] [--services 5000]
 *        [--instances 50000] [--changes 5]
 *
 * The fakes and the client share the machine's 2 cores with the control plane: figures are upper bounds.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TYPE_URL } from '@trellis/api';
import { AdsTestClient, FakeConsul, FakeEureka, FakeKubernetes } from '@trellis/testing';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
}
const S = Number(arg('services', '5000'));
const I = Number(arg('instances', '50000'));
const CHANGES = Number(arg('changes', '5'));
const WHICH = arg('registry', 'all');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PORT = 8080;

const ip = (n: number): string => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

interface Loaded {
  readonly kind: 'consul' | 'eureka' | 'kubernetes';
  readonly registryYaml: string;
  /** Cluster name of service `i`. */
  cluster(i: number): string;
  /** Adds one instance at `address` to service 0. */
  addInstance(n: number, address: string): void;
  close(): Promise<void>;
}

async function loadConsul(): Promise<Loaded> {
  const fake = await new FakeConsul({ maxWaitMs: 60_000 }).start();
  for (let n = 0; n < I; n++) fake.register({ node: `node-${n % 500}`, id: `inst-${n}`, service: `svc-${n % S}`, address: ip(n), port: PORT, meta: { protocol: 'http' } });
  return {
    kind: 'consul',
    registryYaml: `type: consul\naddress: ${fake.url}\n`,
    cluster: (i) => `outbound|${PORT}||svc-${i}.service.consul`,
    addInstance: (n, address) => fake.register({ node: 'node-extra', id: `extra-${n}`, service: 'svc-0', address, port: PORT, meta: { protocol: 'http' } }),
    close: () => fake.close(),
  };
}

async function loadEureka(): Promise<Loaded> {
  const fake = await new FakeEureka().start();
  for (let n = 0; n < I; n++) fake.register({ app: `SVC-${n % S}`, instanceId: `inst-${n}`, ipAddr: ip(n), port: PORT });
  // The load is history the adapter's first full fetch already covers: without this, every delta for the next
  // 3 minutes (Eureka's retention) would carry all I registrations again.
  fake.expireDeltas();
  return {
    kind: 'eureka',
    registryYaml: `type: eureka\naddress: ${fake.serviceUrl}\ndeltaInterval: 1s\n`,
    cluster: (i) => `outbound|${PORT}||svc-${i}.eureka`,
    addInstance: (n, address) => { fake.register({ app: 'SVC-0', instanceId: `extra-${n}`, ipAddr: address, port: PORT }); },
    close: () => fake.close(),
  };
}

async function loadKubernetes(dir: string): Promise<Loaded> {
  const fake = await new FakeKubernetes({ istioCrds: false }).start();
  const per = new Map<number, string[]>();
  for (let n = 0; n < I; n++) {
    const i = n % S;
    let l = per.get(i);
    if (!l) per.set(i, (l = []));
    l.push(ip(n));
  }
  const slice = (i: number, addrs: string[]): Record<string, unknown> => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `svc-${i}-a`, namespace: 'default', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
    addressType: 'IPv4', ports: [{ name: 'http', port: PORT, protocol: 'TCP' }],
    endpoints: addrs.map((a) => ({ addresses: [a], conditions: { ready: true } })),
  });
  for (let i = 0; i < S; i++) {
    fake.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: 'default' }, spec: { clusterIP: 'None', ports: [{ name: 'http', port: PORT, protocol: 'TCP', appProtocol: 'http' }] } });
    fake.apply(slice(i, per.get(i) ?? []));
  }
  const kubeconfig = join(dir, 'kubeconfig.yaml');
  writeFileSync(kubeconfig, fake.kubeconfig());
  return {
    kind: 'kubernetes',
    registryYaml: `type: kubernetes\nkubeconfig: ${kubeconfig}\nclusterId: bench\n`,
    cluster: (i) => `outbound|${PORT}||svc-${i}.default.svc.cluster.local`,
    addInstance: (_n, address) => { per.get(0)!.push(address); fake.apply(slice(0, per.get(0)!)); },
    close: () => fake.close(),
  };
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

interface Row { kind: string; loadMs: number; syncMs: number; shardMs: number; changeMedian: number; changeMax: number; rssSync: number; rssEnd: number }

async function runOne(kind: Loaded['kind']): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-reg-'));
  const cfg = join(dir, 'config');
  mkdirSync(cfg);
  const loadStart = performance.now();
  const reg = kind === 'consul' ? await loadConsul() : kind === 'eureka' ? await loadEureka() : await loadKubernetes(dir);
  const loadMs = performance.now() - loadStart;
  writeFileSync(join(cfg, 'registry.yaml'), `apiVersion: trellis.dev/v1alpha1\nkind: Registry\nmetadata: { name: bench }\nspec:\n${reg.registryYaml.trim().split('\n').map((l) => `  ${l}`).join('\n')}\n`);
  const t0 = performance.now();
  const control: ChildProcessWithoutNullStreams = spawn(process.execPath, [join(root, 'packages/control/bin/trellis-control.js'),
    '--config-dir', cfg, '--state-dir', join(dir, 'state'), '--listen-xds', 'off', '--listen-xds-plaintext', '127.0.0.1:0', '--listen-http', '127.0.0.1:0',
    '--log-level', 'warn'], { stdio: 'pipe' });
  control.stdout.resume();
  const addr: Record<string, string> = {};
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: control.stderr }).on('line', (line) => {
      try {
        const e = JSON.parse(line) as { event?: string; listener?: string; address?: string };
        if (e.event === 'listening' && e.listener && e.address) addr[e.listener] = e.address;
        if (addr.http && addr['xds-plaintext']) resolve();
      } catch { /* not JSON */ }
    });
    control.once('exit', (c) => reject(new Error(`trellis-control exited ${c}`)));
  });
  let shardMs = NaN;
  const shardPoll = (async () => {
    for (;;) {
      try {
        const r = await (await fetch(`http://${addr.http}/debug/registryz`)).json() as { shards: { kind: string; received: boolean; counts: { workloads: number } }[] };
        if (r.shards.some((s) => s.kind === kind && s.received && s.counts.workloads >= I)) { shardMs = performance.now() - t0; return; }
      } catch { /* starting */ }
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  const client = new AdsTestClient({ address: addr['xds-plaintext'], nodeId: 'sidecar~10.250.0.1~bench-client.default~default.svc.cluster.local', decode: [TYPE_URL.cluster, TYPE_URL.endpoint] });
  let syncMs = NaN;
  const target = reg.cluster(0);
  await new Promise<void>((resolve) => {
    client.onResponse = (r) => {
      if (r.type !== TYPE_URL.cluster) return;
      if (r.names.filter((n) => n.startsWith('outbound|')).length >= S && Number.isNaN(syncMs)) {
        syncMs = performance.now() - t0;
        client.subscribe(TYPE_URL.endpoint, [target]);
        resolve();
      }
    };
    client.subscribe(TYPE_URL.cluster);
  });
  await shardPoll;
  const rssSync = rssMb(control.pid!);
  await client.next((r) => r.type === TYPE_URL.endpoint, 0, 60_000);
  const changes: number[] = [];
  for (let c = 0; c < CHANGES; c++) {
    const address = `10.254.${c >> 8}.${c & 255}`;
    const from = client.responses.length;
    const t = performance.now();
    reg.addInstance(c, address);
    await client.next((r) => r.type === TYPE_URL.endpoint && JSON.stringify(r.resources).includes(address), from, 60_000);
    changes.push(performance.now() - t);
    await new Promise((res) => setTimeout(res, 300));
  }
  const rssEnd = rssMb(control.pid!);
  client.close();
  const exited = new Promise((res) => control.once('exit', res));
  control.kill('SIGTERM');
  await exited;
  await reg.close();
  rmSync(dir, { recursive: true, force: true });
  changes.sort((a, b) => a - b);
  return { kind, loadMs, syncMs, shardMs, changeMedian: changes[Math.floor(changes.length / 2)], changeMax: changes[changes.length - 1], rssSync, rssEnd };
}

const kinds = (WHICH === 'all' ? ['consul', 'eureka', 'kubernetes'] : WHICH.split(',')) as Loaded['kind'][];
const rows: Row[] = [];
for (const k of kinds) {
  process.stderr.write(`${k}: ${S} services, ${I} instances…\n`);
  rows.push(await runOne(k));
}
const ms = (n: number): string => (Number.isNaN(n) ? '—' : String(Math.round(n)));
const head = ['registry', 'load fake (ms)', 'shard synced (ms)', 'CDS all ACKed (ms)', 'change→EDS median (ms)', 'change→EDS max (ms)', 'RSS sync (MB)', 'RSS end (MB)'];
const cells = rows.map((r) => [r.kind, ms(r.loadMs), ms(r.shardMs), ms(r.syncMs), ms(r.changeMedian), ms(r.changeMax), String(r.rssSync), String(r.rssEnd)]);
const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
process.stdout.write(`${S} services × ${I} instances, ${CHANGES} changes\n`);
for (const line of [head, ...cells]) process.stdout.write(`${line.map((c, i) => c.padStart(w[i])).join('  ')}\n`);
