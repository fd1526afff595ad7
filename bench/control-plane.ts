/**
 * Control-plane benchmark: N simulated ADS clients (sidecars, over loopback) against a `trellis-control` child
 * process whose file registry holds M services with E endpoints each.
 *
 * Reports: time for all clients to be fully synced at start; per change (one endpoint edited in one service file,
 * an endpoint-only change), the time from the file write until every client has received and ACKed the new EDS
 * (median, p99); pushes per second (from the control plane's pilot_xds_pushes counter); control plane RSS.
 *
 *   node --import tsx bench/control-plane.ts [--clients 100] [--services 100] [--endpoints 10] [--changes 10]
 *
 * `BENCH_CONTROL_BIN=path/to/trellis-control.js` runs another build (e.g. an older checkout) for an A/B comparison;
 * `BENCH_PROFILE=DIR` runs the control plane with `--cpu-prof --cpu-prof-dir DIR`.
 *
 * The clients run in this process and share the 2 cores with the control plane: the figures are an upper bound
 * on latency, not the control plane alone. No wall-clock reference applies here (there is no other xDS server
 * on the machine); the comparison point is istiod's published figure (1,000 services / 2,000 sidecars on 1 vCPU).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TYPE_URL } from '@trellis/api';
import { AdsTestClient } from '@trellis/testing';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const N = arg('clients', 100);
const M = arg('services', 100);
const E = arg('endpoints', 10);
const CHANGES = arg('changes', 10);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function serviceFile(i: number, bump: number): string {
  const eps: string[] = [];
  for (let e = 0; e < E; e++) {
    const n = i * E + e;
    const port = e === 0 ? 8080 + bump : 8080;
    eps.push(`  - address: 10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}\n    ports: { http: ${port} }`);
  }
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: svc-${i}
  namespace: default
spec:
  hosts: [svc-${i}.bench.test]
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
${eps.join('\n')}
`;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

async function scrape(http: string): Promise<{ pushes: number; rss: number; heap: number; cpu: number }> {
  const text = await (await fetch(`${http}/metrics`)).text();
  let pushes = 0;
  for (const m of text.matchAll(/^pilot_xds_pushes\{[^}]*\} (\d+(?:\.\d+)?)/gm)) pushes += Number(m[1]);
  const rss = Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? 0);
  const heap = Number(/^nodejs_heap_size_used_bytes (\d+)/m.exec(text)?.[1] ?? 0);
  const cpu = Number(/^process_cpu_seconds_total (\d+(?:\.\d+)?)/m.exec(text)?.[1] ?? 0);
  return { pushes, rss, heap, cpu };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cp-'));
  const state = mkdtempSync(join(tmpdir(), 'bench-cp-state-'));
  for (let i = 0; i < M; i++) writeFileSync(join(dir, `svc-${i}.yaml`), serviceFile(i, 0));
  const control = spawn(process.execPath, [...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : []), process.env.BENCH_CONTROL_BIN ?? join(root, 'packages/control/bin/trellis-control.js'), '--config-dir', dir, '--state-dir', state,
    '--listen-xds', 'off', '--listen-xds-plaintext', '127.0.0.1:0', '--listen-http', '127.0.0.1:0', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const addr: Record<string, string> = {};
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: control.stderr }).on('line', (l) => {
      try {
        const e = JSON.parse(l) as { event: string; listener?: string; address?: string };
        if (e.event === 'listening' && e.listener && e.address) addr[e.listener] = e.address;
        if (addr.http && addr['xds-plaintext']) resolve();
      } catch { /* ignore */ }
    });
    control.once('exit', (c) => reject(new Error(`trellis-control exited ${c}`)));
  });
  const http = `http://${addr.http}`;
  // warn level hides `listening`; the listeners are printed at info, so ask /ready until the snapshot exists.
  for (let i = 0; i < 600; i++) { if ((await fetch(`${http}/ready`)).status === 200) break; await new Promise((r) => setTimeout(r, 100)); }

  const beforeClients = await scrape(http);
  const clients: AdsTestClient[] = [];
  const t0 = performance.now();
  let synced = 0;
  const syncedAll = new Promise<void>((resolve) => {
    for (let c = 0; c < N; c++) {
      const client = new AdsTestClient({ address: addr['xds-plaintext'], nodeId: `sidecar~10.200.${c >> 8}.${c & 255}~bench-${c}.default~default.svc.cluster.local`, decode: [TYPE_URL.cluster] });
      let gotEds = false;
      client.onResponse = (r) => {
        if (r.type === TYPE_URL.cluster) client.subscribe(TYPE_URL.endpoint, r.names.filter((n) => n.startsWith('outbound|')));
        if (r.type === TYPE_URL.endpoint && !gotEds) { gotEds = true; if (++synced === N) resolve(); }
      };
      client.subscribe(TYPE_URL.cluster);
      client.subscribe(TYPE_URL.listener);
      clients.push(client);
    }
  });
  await syncedAll;
  const initialMs = performance.now() - t0;
  const afterInitial = await scrape(http);
  const cpuBefore = beforeClients.cpu;

  const latencies: number[] = [];
  const changeStart = performance.now();
  for (let k = 1; k <= CHANGES; k++) {
    const seen = clients.map((c) => c.acked.get(TYPE_URL.endpoint));
    let done = 0;
    const started = performance.now();
    const all = new Promise<void>((resolve) => {
      clients.forEach((c, i) => {
        const prev = c.onResponse;
        c.onResponse = (r) => {
          prev?.(r);
          if (r.type === TYPE_URL.endpoint && r.version !== seen[i] && seen[i] !== '\0done') { seen[i] = '\0done'; if (++done === N) resolve(); }
        };
      });
    });
    writeFileSync(join(dir, `svc-${k % M}.yaml`), serviceFile(k % M, k));
    await all;
    latencies.push(performance.now() - started);
    for (const c of clients) c.onResponse = ((r) => { if (r.type === TYPE_URL.cluster) c.subscribe(TYPE_URL.endpoint, r.names.filter((n) => n.startsWith('outbound|'))); });
  }
  const changeSeconds = (performance.now() - changeStart) / 1000;
  const end = await scrape(http);

  const rows: [string, string][] = [
    ['clients (sidecar ADS streams)', String(N)],
    ['services × endpoints', `${M} × ${E} = ${M * E}`],
    ['initial sync, all clients (ms)', initialMs.toFixed(0)],
    ['initial pushes/s', ((afterInitial.pushes) / (initialMs / 1000)).toFixed(0)],
    [`change → all ACKed, median of ${CHANGES} (ms)`, pct(latencies, 50).toFixed(0)],
    [`change → all ACKed, p99 (ms)`, pct(latencies, 99).toFixed(0)],
    ['pushes/s during changes', ((end.pushes - afterInitial.pushes) / changeSeconds).toFixed(0)],
    ['pushes per change (expect = clients: EDS only)', ((end.pushes - afterInitial.pushes) / CHANGES).toFixed(0)],
    ['control plane CPU, initial sync (s)', (afterInitial.cpu - cpuBefore).toFixed(1)],
    ['control plane CPU per change (ms)', (((end.cpu - afterInitial.cpu) * 1000) / CHANGES).toFixed(0)],
    ['control plane RSS (MB)', (end.rss / 1024 / 1024).toFixed(0)],
    ['control plane heap used (MB)', (end.heap / 1024 / 1024).toFixed(0)],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`\ncontrol-plane benchmark (debounce 100 ms / 1 s default, file registry, loopback)\n`);
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);

  for (const c of clients) c.close();
  const exited = new Promise((r) => control.once('exit', r));
  control.kill('SIGTERM');
  await exited;
  rmSync(dir, { recursive: true, force: true });
  rmSync(state, { recursive: true, force: true });
  process.exit(0);
}

await main();
