/**
 * Proxy benchmark: HTTP/1.1 keep-alive through trellis-proxy, through haproxy (Debian) and direct, and two hops
 * (client proxy → mTLS → server proxy) against haproxy doing the same with TLS, all in one run.
 *
 *   node --import tsx bench/proxy.ts [--seconds 5] [--connections 32] [--rate 1000] [--mesh-h1 1] [--profile DIR]
 *
 * Origin: a haproxy frontend answering `200 hello` itself (cheap, so the proxies dominate). Per case:
 *  - throughput: `wrk -t1 -c<connections> -d<seconds>`; CPU µs per request of the proxy process(es) from
 *    /proc/PID/stat utime+stime over the run divided by wrk's request count (two hops: both processes summed);
 *  - latency: this process's open-loop generator at a fixed rate (default 1,000 rps) over keep-alive connections,
 *    latency measured from each request's scheduled time; "added" = the case's percentile minus direct's;
 *  - RSS of the proxy process(es) idle (after config, before load) and after load.
 * Both trellis proxies are `packages/proxy/bin/trellis-proxy.js` child processes configured by a fake ADS and fake
 * SDS in this process; haproxy runs with `nbthread 1` like the single-process Node proxy.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { EXT_TYPE_URL, TYPE_URL } from '@trellis/api';
import { FakeAdsServer, FakeSdsServer, issueTestCert, makeTestCa } from '@trellis/testing';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const SECONDS = arg('seconds', 5);
const CONNECTIONS = arg('connections', 32);
const RATE = arg('rate', 1000);
/** Protocol between the two trellis proxies: HTTP/2 (multiplexed, the default) or HTTP/1.1 pooled (`--mesh-h1 1`). */
const MESH_H1 = arg('mesh-h1', 0) === 1;
/** `--profile DIR`: run the trellis proxies with `--cpu-prof --cpu-prof-dir DIR` (profiles written when they exit). */
const PROFILE_DIR = process.argv.includes('--profile') ? process.argv[process.argv.indexOf('--profile') + 1] : null;
const BIN = fileURLToPath(new URL('../packages/proxy/bin/trellis-proxy.js', import.meta.url));
const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** The Node proxy's PID: the child of `node bin` is the process itself (tsx registers in-process). */
const children: ChildProcess[] = [];
function start(cmd: string, args: string[], name: string): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  c.stderr!.on('data', (d: Buffer) => { err += d; if (err.length > 20000) err = err.slice(-10000); });
  c.once('exit', (code) => { if (code && code !== 143 && !stopping) process.stderr.write(`${name} exited ${code}: ${err}\n`); });
  children.push(c);
  return c;
}
let stopping = false;

async function waitFor(cond: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function wrk(port: number, seconds: number, connections: number): { rps: number; requests: number; errors: number } {
  const out = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`]).toString();
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((s, x) => s + Number(x), 0) : 0);
  if (errors) process.stderr.write(`wrk :${port}: ${sockErr?.[0] ?? ''} ${non2xx ? `non-2xx ${non2xx}` : ''}\n`);
  return { rps, requests, errors };
}

/** Open loop at a fixed rate; latency from each request's scheduled send time (no coordinated omission). */
async function fixedRate(port: number, rate: number, seconds: number): Promise<{ p50: number; p90: number; p99: number; errors: number }> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 16, pipelining: 1 });
  const total = rate * seconds;
  const lat: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  let sent = 0;
  const inflight: Promise<void>[] = [];
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
      while (sent < due) {
        const scheduled = t0 + (sent * 1000) / rate;
        sent += 1;
        inflight.push(pool.request({ path: '/', method: 'GET' }).then(async (r) => { await r.body.dump(); if (r.statusCode !== 200) errors += 1; lat.push(performance.now() - scheduled); }, () => { errors += 1; }));
      }
      if (sent >= total) resolve(); else setImmediate(tick);
    };
    tick();
  });
  await Promise.all(inflight);
  await pool.close();
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), errors };
}

const sdsRef = (name: string) => ({ name, sds_config: { api_config_source: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }] } } });
const hcmInline = (cluster: string) => ({ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': EXT_TYPE_URL.httpConnectionManager, stat_prefix: 'b', route_config: { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster, timeout: { seconds: 0 } } }] }] }, http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': EXT_TYPE_URL.router } }] } });
const staticCluster = (name: string, port: number, extra: Record<string, unknown> = {}) => ({ name, type: 'STATIC', connect_timeout: { seconds: 1 }, load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] }, ...extra });
const listenerAt = (name: string, port: number, chain: Record<string, unknown>) => ({ name, address: { socket_address: { address: '127.0.0.1', port_value: port } }, filter_chains: [chain] });

async function trellisProxy(name: string, ads: FakeAdsServer, sdsSocket: string): Promise<{ pid: number; health: number }> {
  const [admin, prom, health, out, inb] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const c = start(process.execPath, [...(PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', join(PROFILE_DIR, name)] : []), BIN, '--xds-address', ads.address, '--xds-plaintext', '--sds-socket', sdsSocket, '--ip', '127.0.0.1', '--workload-name', name,
    '--admin-port', String(admin), '--prometheus-port', String(prom), '--health-port', String(health), '--outbound-port', String(out), '--inbound-port', String(inb), '--log-level', 'warn', '--concurrency', '1', '--drain-time', '1'], name);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${health}/healthz/ready`)).status === 200, `${name} ready`);
  return { pid: c.pid!, health };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-proxy-'));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    const [origin, hap1, hapA, hapB, t1, tc, ts] = await Promise.all(Array.from({ length: 7 }, freePort));
    const ca = makeTestCa();
    const clientCert = issueTestCert(ca, 'spiffe://cluster.local/ns/default/sa/client');
    const serverCert = issueTestCert(ca, 'spiffe://cluster.local/ns/default/sa/server');
    writeFileSync(join(dir, 'ca.pem'), ca.certPem);
    writeFileSync(join(dir, 'client.pem'), clientCert.chainPem + clientCert.keyPem);
    writeFileSync(join(dir, 'server.pem'), serverCert.chainPem + serverCert.keyPem);
    const defaults = 'defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\n';
    const global = 'global\n  nbthread 1\n  maxconn 4000\n';
    writeFileSync(join(dir, 'origin.cfg'), `${global}${defaults}frontend origin\n  bind 127.0.0.1:${origin}\n  http-request return status 200 content-type text/plain string hello\n`);
    writeFileSync(join(dir, 'hap1.cfg'), `${global}${defaults}frontend fe\n  bind 127.0.0.1:${hap1}\n  default_backend be\nbackend be\n  http-reuse always\n  server s1 127.0.0.1:${origin}\n`);
    writeFileSync(join(dir, 'hapA.cfg'), `${global}${defaults}frontend fe\n  bind 127.0.0.1:${hapA}\n  default_backend be\nbackend be\n  http-reuse always\n  server s1 127.0.0.1:${hapB} ssl crt ${join(dir, 'client.pem')} ca-file ${join(dir, 'ca.pem')} verify required alpn h2\n`);
    writeFileSync(join(dir, 'hapB.cfg'), `${global}${defaults}frontend fe\n  bind 127.0.0.1:${hapB} ssl crt ${join(dir, 'server.pem')} ca-file ${join(dir, 'ca.pem')} verify required alpn h2,http/1.1\n  default_backend be\nbackend be\n  http-reuse always\n  server s1 127.0.0.1:${origin}\n`);
    const hp = (cfg: string) => start('haproxy', ['-db', '-f', join(dir, cfg)], cfg);
    const originP = hp('origin.cfg');
    const hap1P = hp('hap1.cfg');
    const hapAP = hp('hapA.cfg');
    const hapBP = hp('hapB.cfg');
    void originP;
    await waitFor(async () => (await fetch(`http://127.0.0.1:${origin}/`)).status === 200, 'origin');
    await waitFor(async () => (await fetch(`http://127.0.0.1:${hap1}/`)).status === 200, 'haproxy');
    await waitFor(async () => (await fetch(`http://127.0.0.1:${hapA}/`)).status === 200, 'haproxy two hops');

    // trellis: one hop (plain HTTP/1.1 upstream pool)
    const ads1 = await new FakeAdsServer().start();
    cleanups.push(() => ads1.stop());
    ads1.set(TYPE_URL.listener, [listenerAt('one-hop', t1, { filters: [hcmInline('origin')] })]);
    ads1.set(TYPE_URL.cluster, [staticCluster('origin', origin)]);
    // trellis: two hops with mTLS (HTTP/2 multiplexed between the proxies)
    const adsC = await new FakeAdsServer().start();
    const adsS = await new FakeAdsServer().start();
    const sdsC = await new FakeSdsServer().start();
    const sdsS = await new FakeSdsServer().start();
    cleanups.push(() => adsC.stop(), () => adsS.stop(), () => sdsC.stop(), () => sdsS.stop());
    sdsC.setCertificate('default', clientCert); sdsC.setTrustBundle('ROOTCA', ca.certPem);
    sdsS.setCertificate('default', serverCert); sdsS.setTrustBundle('ROOTCA', ca.certPem);
    const upTls = { name: 'tls', typed_config: { '@type': EXT_TYPE_URL.upstreamTlsContext, common_tls_context: { tls_certificate_sds_secret_configs: [sdsRef('default')], combined_validation_context: { default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/default/sa/server' } }] }, validation_context_sds_secret_config: sdsRef('ROOTCA') } } } };
    const h2 = { typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': EXT_TYPE_URL.httpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } } };
    adsC.set(TYPE_URL.listener, [listenerAt('client', tc, { filters: [hcmInline('outbound|80||server.default.svc.cluster.local')] })]);
    adsC.set(TYPE_URL.cluster, [staticCluster('outbound|80||server.default.svc.cluster.local', ts, { transport_socket: upTls, ...(MESH_H1 ? {} : h2) })]);
    const downTls = { name: 'tls', typed_config: { '@type': EXT_TYPE_URL.downstreamTlsContext, require_client_certificate: { value: true }, common_tls_context: { alpn_protocols: ['h2', 'http/1.1'], tls_certificate_sds_secret_configs: [sdsRef('default')], combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: sdsRef('ROOTCA') } } } };
    adsS.set(TYPE_URL.listener, [listenerAt('inbound', ts, { filter_chain_match: { transport_protocol: 'tls' }, transport_socket: downTls, filters: [hcmInline('inbound|80||')] })]);
    adsS.set(TYPE_URL.cluster, [staticCluster('inbound|80||', origin)]);
    const p1 = await trellisProxy('one-hop', ads1, '');
    const pc = await trellisProxy('client', adsC, sdsC.socketPath);
    const ps = await trellisProxy('server', adsS, sdsS.socketPath);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${t1}/`)).status === 200, 'trellis one hop');
    await waitFor(async () => (await fetch(`http://127.0.0.1:${tc}/`)).status === 200, 'trellis two hops');

    const cases: { name: string; port: number; pids: number[] }[] = [
      { name: 'direct (origin)', port: origin, pids: [] },
      { name: 'haproxy, 1 hop', port: hap1, pids: [hap1P.pid!] },
      { name: 'trellis-proxy, 1 hop', port: t1, pids: [p1.pid] },
      { name: 'haproxy, 2 hops TLS', port: hapA, pids: [hapAP.pid!, hapBP.pid!] },
      { name: `trellis-proxy, 2 hops mTLS (${MESH_H1 ? 'h1' : 'h2'})`, port: tc, pids: [pc.pid, ps.pid] },
    ];
    const rows: { name: string; rps: number; cpuUs: number; p50: number; p90: number; p99: number; rssIdle: number; rssLoad: number; errors: string }[] = [];
    for (const c of cases) {
      const rssIdle = c.pids.reduce((s, p) => s + rssMb(p), 0);
      wrk(c.port, 1, CONNECTIONS);
      const cpus0 = c.pids.map(cpuSeconds);
      const w = wrk(c.port, SECONDS, CONNECTIONS);
      const cpus1 = c.pids.map(cpuSeconds);
      const cpu0 = cpus0.reduce((s, x) => s + x, 0);
      const cpu1 = cpus1.reduce((s, x) => s + x, 0);
      if (c.pids.length > 1) process.stderr.write(`${c.name}: CPU µs/req per process ${cpus1.map((x, i) => (((x - cpus0[i]) * 1e6) / w.requests).toFixed(1)).join(' + ')}\n`);
      const rssLoad = c.pids.reduce((s, p) => s + rssMb(p), 0);
      const l = await fixedRate(c.port, RATE, SECONDS);
      rows.push({ name: c.name, rps: w.rps, cpuUs: c.pids.length ? ((cpu1 - cpu0) * 1e6) / w.requests : NaN, p50: l.p50, p90: l.p90, p99: l.p99, rssIdle, rssLoad, errors: `${w.errors}/${l.errors}` });
      process.stderr.write(`${c.name}: done\n`);
    }
    const direct = rows[0];
    const hap = rows[1];
    const hap2 = rows[3];
    const f = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
    const lines = [
      `HTTP/1.1 keep-alive, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s; latency at ${RATE} rps for ${SECONDS}s (added = case − direct); CPU and RSS of the proxy process(es)`,
      `${'case'.padEnd(34)}${'rps'.padStart(8)}${'× ref'.padStart(7)}${'CPU µs/req'.padStart(12)}${'× ref'.padStart(7)}${'+p50 ms'.padStart(9)}${'+p90 ms'.padStart(9)}${'+p99 ms'.padStart(9)}${'RSS idle MB'.padStart(13)}${'RSS load MB'.padStart(13)}${'errors wrk/fixed'.padStart(18)}`,
    ];
    rows.forEach((r, i) => {
      const ref = i >= 3 ? hap2 : hap;
      const isDirect = i === 0;
      lines.push(`${r.name.padEnd(34)}${f(r.rps).padStart(8)}${f(r.rps / (isDirect ? direct.rps : ref.rps), 2).padStart(7)}${f(r.cpuUs, 1).padStart(12)}${(isDirect ? '-' : f(r.cpuUs / ref.cpuUs, 2)).padStart(7)}`
        + `${(isDirect ? f(r.p50, 2) : f(r.p50 - direct.p50, 2)).padStart(9)}${(isDirect ? f(r.p90, 2) : f(r.p90 - direct.p90, 2)).padStart(9)}${(isDirect ? f(r.p99, 2) : f(r.p99 - direct.p99, 2)).padStart(9)}`
        + `${f(r.rssIdle, 1).padStart(13)}${f(r.rssLoad, 1).padStart(13)}${r.errors.padStart(18)}`);
    });
    lines.push('(× ref: 1-hop rows against haproxy 1 hop, 2-hop rows against haproxy 2 hops; direct row shows absolute latency)');
    console.log(lines.join('\n'));
  } finally {
    stopping = true;
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => { c.once('exit', r); setTimeout(() => { c.kill('SIGKILL'); r(null); }, 3000); }))));
    for (const c of cleanups.reverse()) await c();
  }
}

await main();
