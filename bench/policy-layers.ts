/**
 * Cost of each policy layer: CPU per request through one trellis-proxy hop with one layer configured at a time,
 * against the same hop with none (the baseline), and haproxy / direct as the machine's reference, all in one run.
 *
 *   node --import tsx bench/policy-layers.ts [--seconds 3] [--connections 32] [--rounds 1] [--only jwt,rbac]
 *
 * Origin: a haproxy frontend answering `200 hello` itself (as in bench/proxy.ts). Each case is one entry of CASES:
 * the HTTP filters before the router, HCM fields (access log, tracing), route fields (retries, mirror, per-route
 * filter configs), extra clusters and the request headers wrk sends. Per case a fresh `trellis-proxy` child process
 * (the real binary, fake ADS in this process) gets one explicit listener; the bench waits until the listener answers
 * 200 with the case's headers (a case whose config the proxy rejects, or whose layer is missing, is reported and
 * skipped), warms up for 2 s, then runs `wrk -t1 -c<connections> -d<seconds>` and reads the proxy's utime+stime
 * from /proc. CPU µs/request = CPU seconds ÷ requests; "× base" is the ratio to the mean of the baseline rows
 * (the baseline runs first and last in each round to show drift); "+µs" is the difference. With `--rounds N` every
 * case runs N times and the median is shown. Where a case can prove its layer acted (a 401 for a bad token, a 403
 * from RBAC, the CORS header, a non-empty access log) it checks after the load and says so in the note column.
 *
 * Also printed: node:crypto's cost of one signature verification per JWT algorithm (what a request pays when its
 * token is not in the verified-token cache; the jwt case sends one token, so it is cached after the first request).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { constants, generateKeyPairSync, sign, verify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXT_TYPE_URL, TYPE_URL, toStruct } from '@trellis/api';
import { FakeAdsServer } from '@trellis/testing';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
}
const SECONDS = Number(arg('seconds', '3'));
const CONNECTIONS = Number(arg('connections', '32'));
const ROUNDS = Number(arg('rounds', '1'));
const ONLY = arg('only', '').split(',').filter(Boolean);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'packages/proxy/bin/trellis-proxy.js');
const LAYERS = join(ROOT, 'packages/proxy/src/http/layers');
const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

// ---- process and measurement helpers (the same as bench/proxy.ts) ----

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

let stopping = false;
const children = new Set<ChildProcess>();
function start(cmd: string, args: string[], name: string): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  c.stderr!.on('data', (d: Buffer) => { err += d; if (err.length > 20000) err = err.slice(-10000); });
  c.once('exit', (code) => { children.delete(c); if (code && code !== 143 && !stopping) process.stderr.write(`${name} exited ${code}: ${err}\n`); });
  children.add(c);
  return c;
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

function wrk(port: number, seconds: number, headers: readonly string[], script?: string): { rps: number; requests: number; errors: number } {
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, ...headers.flatMap((h) => ['-H', h]), ...(script ? ['-s', script] : []), `http://127.0.0.1:${port}/`], { maxBuffer: 1 << 24 }).toString();
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((s, x) => s + Number(x), 0) : 0);
  return { rps, requests, errors };
}

// ---- Envoy config builders ----

type Obj = Record<string, unknown>;
const staticCluster = (name: string, port: number): Obj => ({ name, type: 'STATIC', connect_timeout: { seconds: 1 }, load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] } });
const filter = (name: string, type: string, config: Obj = {}): Obj => ({ name, typed_config: { '@type': type, ...config } });

/** One measured configuration: what the listener's HCM and route carry besides the router. */
interface Case {
  readonly name: string;
  /** Proxy layer file(s) the case needs (packages/proxy/src/http/layers/<file>.ts); missing → skipped. */
  readonly layers: readonly string[];
  readonly filters?: readonly Obj[];
  readonly hcm?: Obj;
  readonly route?: Obj;
  readonly clusters?: readonly Obj[];
  readonly headers?: readonly string[];
  /** A wrk Lua script (path) that makes the requests instead (e.g. rotating tokens). */
  readonly script?: string;
  /** Proof that the layer is active (not a pass-through): a problem description, or null. Runs after the load. */
  readonly check?: (port: number) => Promise<string | null>;
}

const expectStatus = (method: string, headers: Record<string, string>, want: number) => async (port: number): Promise<string | null> => {
  const r = await fetch(`http://127.0.0.1:${port}/`, { method, headers });
  await r.arrayBuffer();
  return r.status === want ? null : `check failed: ${method} answered ${r.status}, expected ${want}`;
};

interface Env {
  readonly origin: number;
  readonly dir: string;
  readonly jwt: { readonly jwks: string; readonly token: string; readonly rotatingScript: string };
}

const JWT_ISS = 'https://issuer.bench';

function rbacPolicies(): Obj {
  // Ten rules as Istio generates them (method + path, from a principal header); only the last one matches, so a
  // request is checked against all ten.
  const policies: Record<string, Obj> = {};
  for (let i = 0; i < 9; i++) {
    policies[`ns[bench]-policy[p${i}]-rule[0]`] = {
      permissions: [{ and_rules: { rules: [{ or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'POST' } } }] } }, { or_rules: { rules: [{ url_path: { path: { prefix: `/admin/${i}/` } } }] } }] } }],
      principals: [{ and_ids: { ids: [{ or_ids: { ids: [{ header: { name: 'x-user', string_match: { exact: `user-${i}` } } }] } }] } }],
    };
  }
  policies['ns[bench]-policy[p9]-rule[0]'] = {
    permissions: [{ and_rules: { rules: [{ or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }] } }, { or_rules: { rules: [{ url_path: { path: { prefix: '/' } } }] } }] } }],
    principals: [{ and_ids: { ids: [{ any: true }] } }],
  };
  return { rules: { action: 'ALLOW', policies } };
}

function cases(env: Env): Case[] {
  const jwtFilter = filter('envoy.filters.http.jwt_authn', EXT_TYPE_URL.jwtAuthn, {
    providers: { 'origins-0': { issuer: JWT_ISS, audiences: ['bench'], local_jwks: { inline_string: env.jwt.jwks }, payload_in_metadata: 'payload', normalize_payload_in_metadata: { space_delimited_claims: ['permission', 'scope'] } } },
    rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] } } }],
    bypass_cors_preflight: true,
  });
  const rbac = filter('envoy.filters.http.rbac', EXT_TYPE_URL.rbacHttp, { ...rbacPolicies(), shadow_rules_stat_prefix: 'istio_dry_run_allow_' });
  const fault = filter('envoy.filters.http.fault', EXT_TYPE_URL.fault);
  const cors = filter('envoy.filters.http.cors', EXT_TYPE_URL.cors);
  const all: Case[] = [
    { name: 'baseline (router only)', layers: [] },
    { name: 'jwt_authn, valid RS256 token', layers: ['jwt-authn'], filters: [jwtFilter], headers: [`Authorization: Bearer ${env.jwt.token}`], check: expectStatus('GET', { authorization: 'Bearer x.y.z' }, 401) },
    {
      name: `jwt_authn, ${ROTATING_TOKENS} rotating tokens (no cache hit)`, layers: ['jwt-authn'], filters: [jwtFilter], headers: [`Authorization: Bearer ${env.jwt.token}`],
      script: env.jwt.rotatingScript, check: expectStatus('GET', { authorization: 'Bearer x.y.z' }, 401),
    },
    { name: 'jwt_authn, no token (allow_missing)', layers: ['jwt-authn'], filters: [jwtFilter], check: expectStatus('GET', { authorization: 'Bearer x.y.z' }, 401) },
    { name: 'rbac, 10 rules (last matches)', layers: ['rbac'], filters: [rbac], check: expectStatus('POST', {}, 403) },
    {
      name: 'fault, delay+abort at 0 %', layers: ['fault'], filters: [fault],
      route: { typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': EXT_TYPE_URL.fault, delay: { fixed_delay: { seconds: 1 }, percentage: { numerator: 0, denominator: 'HUNDRED' } }, abort: { http_status: 503, percentage: { numerator: 0, denominator: 'HUNDRED' } } } } },
    },
    {
      name: 'cors, simple request with Origin', layers: ['cors'], filters: [cors], headers: ['Origin: http://app.example'],
      check: async (port) => {
        const r = await fetch(`http://127.0.0.1:${port}/`, { headers: { origin: 'http://app.example' } });
        await r.arrayBuffer();
        return r.headers.get('access-control-allow-origin') === 'http://app.example' ? null : 'check failed: no access-control-allow-origin';
      },
      route: { typed_per_filter_config: { 'envoy.filters.http.cors': { '@type': EXT_TYPE_URL.corsPolicy, allow_origin_string_match: [{ exact: 'http://app.example' }], allow_methods: 'GET,POST', allow_headers: 'content-type', expose_headers: 'x-request-id', max_age: '3600' } } },
    },
    {
      name: 'mirror 100 % to a sink', layers: ['mirror'], clusters: [staticCluster('sink', env.origin)],
      route: { request_mirror_policies: [{ cluster: 'sink', runtime_fraction: { default_value: { numerator: 100, denominator: 'HUNDRED' } } }] },
    },
    {
      name: 'retries configured (none taken)', layers: [],
      route: { timeout: { seconds: 10 }, retry_policy: { retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,5xx', num_retries: { value: 2 }, per_try_timeout: { seconds: 5 } } },
    },
    {
      name: 'access log (JSON) to a file', layers: [],
      check: async () => (existsSync(join(env.dir, 'access.log')) && statSync(join(env.dir, 'access.log')).size > 0 ? null : 'check failed: access log empty'),
      hcm: { access_log: [{ name: 'envoy.access_loggers.file', typed_config: { '@type': EXT_TYPE_URL.fileAccessLog, path: join(env.dir, 'access.log'), log_format: { json_format: toStruct({
        start_time: '%START_TIME%', method: '%REQ(:METHOD)%', path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%', protocol: '%PROTOCOL%', response_code: '%RESPONSE_CODE%',
        response_flags: '%RESPONSE_FLAGS%', bytes_received: '%BYTES_RECEIVED%', bytes_sent: '%BYTES_SENT%', duration: '%DURATION%', upstream_host: '%UPSTREAM_HOST%',
        x_forwarded_for: '%REQ(X-FORWARDED-FOR)%', user_agent: '%REQ(USER-AGENT)%', request_id: '%REQ(X-REQUEST-ID)%', authority: '%REQ(:AUTHORITY)%',
        upstream_cluster: '%UPSTREAM_CLUSTER%', downstream_peer: '%DOWNSTREAM_PEER_URI_SAN%',
      }) } } }] },
    },
    {
      name: 'tracing 100 % (Zipkin to a sink)', layers: ['tracing'], clusters: [staticCluster('zipkin', env.origin)],
      hcm: { tracing: { random_sampling: { value: 100 }, provider: { name: 'envoy.tracers.zipkin', typed_config: { '@type': EXT_TYPE_URL.zipkinConfig, collector_cluster: 'zipkin', collector_endpoint: '/api/v2/spans', collector_endpoint_version: 'HTTP_JSON', collector_hostname: `127.0.0.1:${env.origin}` } } } },
    },
  ];
  // Every layer at once (the order is the proxy's, not this list's).
  const layered = all.slice(1).filter((c) => c.name.startsWith('jwt_authn, valid') || !c.name.startsWith('jwt_authn'));
  all.push({
    name: 'all of the above together', layers: [...new Set(layered.flatMap((c) => c.layers))],
    filters: layered.flatMap((c) => c.filters ?? []),
    hcm: Object.assign({}, ...layered.map((c) => c.hcm ?? {})) as Obj,
    route: { ...Object.assign({}, ...layered.map((c) => c.route ?? {})) as Obj, typed_per_filter_config: Object.assign({}, ...layered.map((c) => (c.route?.typed_per_filter_config as Obj | undefined) ?? {})) as Obj },
    clusters: layered.flatMap((c) => c.clusters ?? []),
    headers: layered.flatMap((c) => c.headers ?? []),
  });
  all.push({ ...all[0]!, name: 'baseline again (drift check)' });
  return all;
}

function listenerFor(c: Case, port: number): Obj {
  // Route-level fields (typed_per_filter_config) stay on the route; RouteAction fields move into `route`.
  const { typed_per_filter_config: tpfc, ...action } = (c.route ?? {}) as Obj;
  const r: Obj = { match: { prefix: '/' }, route: { cluster: 'origin', timeout: { seconds: 0 }, ...action }, ...(tpfc ? { typed_per_filter_config: tpfc } : {}) };
  return {
    name: 'bench', address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
      '@type': EXT_TYPE_URL.httpConnectionManager, stat_prefix: 'bench',
      route_config: { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [r] }] },
      http_filters: [...(c.filters ?? []), filter('envoy.filters.http.router', EXT_TYPE_URL.router)],
      ...(c.hcm ?? {}),
    } }] }],
  };
}

async function trellisProxy(ads: FakeAdsServer): Promise<{ child: ChildProcess; ready: boolean }> {
  const [admin, prom, health, out, inb] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const child = start(process.execPath, [BIN, '--xds-address', ads.address, '--xds-plaintext', '--sds-socket', '', '--ip', '127.0.0.1', '--workload-name', 'bench',
    '--admin-port', String(admin), '--prometheus-port', String(prom), '--health-port', String(health), '--outbound-port', String(out), '--inbound-port', String(inb),
    '--log-level', 'warn', '--concurrency', '1', '--drain-time', '0'], 'trellis-proxy');
  const ready = await waitFor(async () => (await fetch(`http://127.0.0.1:${health}/healthz/ready`)).status === 200, 30_000);
  return { child, ready };
}

function headerObject(headers: readonly string[]): Record<string, string> {
  return Object.fromEntries(headers.map((h) => { const i = h.indexOf(':'); return [h.slice(0, i).trim(), h.slice(i + 1).trim()]; }));
}

interface Row { name: string; cpuUs: number[]; rps: number[]; errors: number; note: string }

async function runCase(c: Case, env: Env): Promise<{ cpuUs: number; rps: number; errors: number; note: string } | string> {
  const missing = c.layers.filter((l) => !existsSync(join(LAYERS, `${l}.ts`)));
  if (missing.length) return `skipped: no layer ${missing.join(', ')}`;
  const port = await freePort();
  const ads = await new FakeAdsServer().start();
  try {
    try {
      ads.set(TYPE_URL.listener, [listenerFor(c, port)]);
      ads.set(TYPE_URL.cluster, [staticCluster('origin', env.origin), ...(c.clusters ?? [])]);
    } catch (err) {
      return `skipped: ${(err as Error).message}`;
    }
    const p = await trellisProxy(ads);
    try {
      if (!p.ready) return 'skipped: proxy not ready';
      const ok = await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/`, { headers: headerObject(c.headers ?? []) })).status === 200, 10_000);
      if (!ok) return 'skipped: listener not serving 200 (config rejected?)';
      wrk(port, 2, c.headers ?? [], c.script);
      const pid = p.child.pid!;
      const cpu0 = cpuSeconds(pid);
      const w = wrk(port, SECONDS, c.script ? [] : c.headers ?? [], c.script);
      const cpu1 = cpuSeconds(pid);
      const problem = c.check ? await c.check(port).catch((e: Error) => `check failed: ${e.message}`) : null;
      return { cpuUs: ((cpu1 - cpu0) * 1e6) / Math.max(1, w.requests), rps: w.rps, errors: w.errors, note: problem ?? '' };
    } finally {
      await stopChild(p.child);
    }
  } finally {
    await ads.stop();
  }
}

/** µs per verification with node:crypto, per algorithm (the cost of a token not yet in the verified-token cache). */
function verifyCosts(): string[] {
  const data = Buffer.from('eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5iZW5jaCJ9');
  const out: string[] = [];
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
  const algs: [string, string, () => Buffer, () => boolean][] = [];
  const rsSig = sign('sha256', data, rsa.privateKey);
  algs.push(['RS256 (RSA 2048)', 'sha256', () => rsSig, () => verify('sha256', data, rsa.publicKey, rsSig)]);
  const psSig = sign('sha256', data, { key: rsa.privateKey, ...pss });
  algs.push(['PS256 (RSA 2048)', 'sha256', () => psSig, () => verify('sha256', data, { key: rsa.publicKey, ...pss }, psSig)]);
  const es256 = sign('sha256', data, { key: ec256.privateKey, dsaEncoding: 'ieee-p1363' });
  algs.push(['ES256 (P-256)', 'sha256', () => es256, () => verify('sha256', data, { key: ec256.publicKey, dsaEncoding: 'ieee-p1363' }, es256)]);
  const es384 = sign('sha384', data, { key: ec384.privateKey, dsaEncoding: 'ieee-p1363' });
  algs.push(['ES384 (P-384)', 'sha384', () => es384, () => verify('sha384', data, { key: ec384.publicKey, dsaEncoding: 'ieee-p1363' }, es384)]);
  for (const [name, , , run] of algs) {
    for (let i = 0; i < 200; i++) run();
    const n = 2000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) run();
    out.push(`${name.padEnd(20)}${(Number(process.hrtime.bigint() - t0) / 1e3 / n).toFixed(1).padStart(8)} µs/verify`);
  }
  return out;
}

/** Distinct tokens the rotating case cycles through: more than the verified-token cache (100) holds. */
const ROTATING_TOKENS = 500;

function jwtFixture(dir: string): Env['jwt'] {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const token = (sub: string) => {
    const input = `${b64({ alg: 'RS256', typ: 'JWT', kid: 'bench' })}.${b64({ iss: JWT_ISS, sub, aud: 'bench', scope: 'read write', exp: Math.floor(Date.now() / 1000) + 86_400 })}`;
    return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
  };
  const rotatingScript = join(dir, 'rotating-tokens.lua');
  const tokens = Array.from({ length: ROTATING_TOKENS }, (_, i) => token(`user-${i}`));
  writeFileSync(rotatingScript, `local tokens = {\n${tokens.map((t) => `  "${t}",`).join('\n')}\n}\nlocal i = 0\nrequest = function()\n  i = i % #tokens + 1\n  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[i] })\nend\n`);
  return {
    jwks: JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'RS256', use: 'sig' }] }),
    token: token('bench-user'),
    rotatingScript,
  };
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN; };

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-policy-'));
  try {
    const [origin, hap1] = await Promise.all([freePort(), freePort()]);
    const defaults = 'defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\n';
    const global = 'global\n  nbthread 1\n  maxconn 4000\n';
    writeFileSync(join(dir, 'origin.cfg'), `${global}${defaults}frontend origin\n  bind 127.0.0.1:${origin}\n  http-request return status 200 content-type text/plain string hello\n`);
    writeFileSync(join(dir, 'hap1.cfg'), `${global}${defaults}frontend fe\n  bind 127.0.0.1:${hap1}\n  default_backend be\nbackend be\n  http-reuse always\n  server s1 127.0.0.1:${origin}\n`);
    start('haproxy', ['-db', '-f', join(dir, 'origin.cfg')], 'origin');
    const hap = start('haproxy', ['-db', '-f', join(dir, 'hap1.cfg')], 'haproxy');
    if (!(await waitFor(async () => (await fetch(`http://127.0.0.1:${hap1}/`)).status === 200, 10_000))) throw new Error('haproxy did not start');
    const env: Env = { origin, dir, jwt: jwtFixture(dir) };
    const list = cases(env).filter((c) => ONLY.length === 0 || c.name.startsWith('baseline') || ONLY.some((o) => c.name.includes(o)));
    const rows: Row[] = list.map((c) => ({ name: c.name, cpuUs: [], rps: [], errors: 0, note: '' }));
    const refCpu: number[] = [];
    const refRps: number[] = [];
    const directRps: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      directRps.push(wrk(origin, SECONDS, []).rps);
      wrk(hap1, 1, []);
      const c0 = cpuSeconds(hap.pid!);
      const w = wrk(hap1, SECONDS, []);
      refCpu.push(((cpuSeconds(hap.pid!) - c0) * 1e6) / Math.max(1, w.requests));
      refRps.push(w.rps);
      for (const [i, c] of list.entries()) {
        const r = await runCase(c, env);
        if (typeof r === 'string') rows[i]!.note = r;
        else { rows[i]!.cpuUs.push(r.cpuUs); rows[i]!.rps.push(r.rps); rows[i]!.errors += r.errors; if (r.note) rows[i]!.note = r.note; }
        process.stderr.write(`round ${round + 1}/${ROUNDS} ${c.name}: ${typeof r === 'string' ? r : `${r.cpuUs.toFixed(1)} µs/req, ${r.rps.toFixed(0)} rps`}\n`);
      }
    }
    const base = (median(rows[0]!.cpuUs) + median(rows[rows.length - 1]!.cpuUs)) / 2;
    const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '-');
    const lines = [
      `One hop, HTTP/1.1 keep-alive, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, ${ROUNDS} round(s) (median); CPU of the proxy process per request`,
      `${'case'.padEnd(48)}${'rps'.padStart(8)}${'CPU µs/req'.padStart(12)}${'× base'.padStart(8)}${'+µs'.padStart(8)}${'errors'.padStart(8)}  note`,
      `${'direct (origin)'.padEnd(48)}${f(median(directRps), 0).padStart(8)}${'-'.padStart(12)}${'-'.padStart(8)}${'-'.padStart(8)}${'0'.padStart(8)}`,
      `${'haproxy, 1 hop (reference)'.padEnd(48)}${f(median(refRps), 0).padStart(8)}${f(median(refCpu)).padStart(12)}${f(median(refCpu) / base, 2).padStart(8)}${'-'.padStart(8)}${'0'.padStart(8)}`,
    ];
    for (const r of rows) {
      const cpu = median(r.cpuUs);
      lines.push(`${r.name.padEnd(48)}${f(median(r.rps), 0).padStart(8)}${f(cpu).padStart(12)}${f(cpu / base, 2).padStart(8)}${f(cpu - base).padStart(8)}${String(r.errors).padStart(8)}  ${r.note}`);
    }
    lines.push(`(× base and +µs against the mean of the two baseline rows, ${f(base)} µs/req; baseline ÷ haproxy = ${f(base / median(refCpu), 2)})`);
    lines.push('', 'JWT signature verification with node:crypto (paid once per token: verified tokens are cached, 100 per provider):', ...verifyCosts());
    console.log(lines.join('\n'));
  } finally {
    stopping = true;
    await Promise.all([...children].map(stopChild));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
