/**
 * The WorkloadGroup readiness probe as the agent runs it (Istio's `ReadinessProbe`, Kubernetes semantics):
 * `httpGet` (2xx/3xx is success), `tcpSocket` (a connection opens), `exec` (exit status 0); `grpc` is not run yet
 * and reports failure saying so. Every `periodSeconds` (default 10) after `initialDelaySeconds`, each attempt bounded
 * by `timeoutSeconds` (default 1). The workload starts not ready; `successThreshold` (default 1) successes in a row
 * make it ready and `failureThreshold` (default 3) failures in a row make it not ready again.
 *
 * The definition comes from the bundle's probe.json, written by `trellisctl vm configure` from the WorkloadGroup.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { TrellisError } from '@trellis/api';

export interface ProbeSpec {
  readonly initialDelaySeconds?: number;
  readonly timeoutSeconds?: number;
  readonly periodSeconds?: number;
  readonly successThreshold?: number;
  readonly failureThreshold?: number;
  readonly httpGet?: { readonly path?: string; readonly port: number; readonly host?: string; readonly scheme?: 'HTTP' | 'HTTPS'; readonly httpHeaders?: readonly { readonly name: string; readonly value?: string }[] };
  readonly tcpSocket?: { readonly host?: string; readonly port: number };
  readonly exec?: { readonly command: readonly string[] };
  readonly grpc?: { readonly port?: number; readonly service?: string };
}

export interface ProbeResult {
  readonly healthy: boolean;
  /** Why it failed (absent on success). */
  readonly message?: string;
}

export const PROBE_FILE = 'probe.json';

/** Where probes connect when the probe names no host. */
export const DEFAULT_PROBE_HOST = '127.0.0.1';

const isPort = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0 && (v as number) < 65536;
const isCount = (v: unknown): boolean => v === undefined || (Number.isInteger(v) && (v as number) >= 0);

/** Checks a probe definition; throws TRELLIS_ERR_CONFIG naming `file` and the field. */
export function parseProbe(value: unknown, file: string): ProbeSpec {
  const errors: string[] = [];
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new TrellisError('TRELLIS_ERR_CONFIG', `${file}: expected a JSON object (a WorkloadGroup probe)`);
  const p = value as Record<string, unknown>;
  for (const k of ['initialDelaySeconds', 'timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold']) {
    if (!isCount(p[k])) errors.push(`${file}: ${k}: must be a non-negative integer`);
  }
  const kinds = ['httpGet', 'tcpSocket', 'exec', 'grpc'].filter((k) => p[k] !== undefined);
  if (kinds.length !== 1) errors.push(`${file}: exactly one of httpGet, tcpSocket, exec, grpc must be set (found ${kinds.length})`);
  const obj = (k: string): Record<string, unknown> | undefined => (p[k] && typeof p[k] === 'object' ? (p[k] as Record<string, unknown>) : undefined);
  if (p.httpGet !== undefined && !isPort(obj('httpGet')?.port)) errors.push(`${file}: httpGet.port: must be 1-65535`);
  if (p.tcpSocket !== undefined && !isPort(obj('tcpSocket')?.port)) errors.push(`${file}: tcpSocket.port: must be 1-65535`);
  if (p.exec !== undefined) {
    const c = obj('exec')?.command;
    if (!Array.isArray(c) || c.length === 0 || !c.every((x) => typeof x === 'string')) errors.push(`${file}: exec.command: must be a non-empty list of strings`);
  }
  if (errors.length > 0) throw new TrellisError('TRELLIS_ERR_CONFIG', errors.join('\n'));
  return Object.freeze(p as ProbeSpec);
}

/** The bundle's probe.json, or undefined when the group has no probe. */
export function readProbeFile(bundleDir: string): ProbeSpec | undefined {
  const file = join(bundleDir, PROBE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TrellisError('TRELLIS_ERR_CONFIG', `${file}: ${(e as Error).message}`, { cause: e });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TrellisError('TRELLIS_ERR_CONFIG', `${file}: not JSON (${(e as Error).message})`, { cause: e });
  }
  return parseProbe(parsed, file);
}

/** One probe attempt. Never rejects. */
export function probeOnce(spec: ProbeSpec, timeoutMs: number): Promise<ProbeResult> {
  if (spec.httpGet) return httpProbe(spec.httpGet, timeoutMs);
  if (spec.tcpSocket) return tcpProbe(spec.tcpSocket.host || DEFAULT_PROBE_HOST, spec.tcpSocket.port, timeoutMs);
  if (spec.exec) return execProbe(spec.exec.command, timeoutMs);
  return Promise.resolve({ healthy: false, message: 'grpc probes are not supported by this agent' });
}

function httpProbe(h: NonNullable<ProbeSpec['httpGet']>, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const https = h.scheme === 'HTTPS';
    const headers: Record<string, string> = { 'user-agent': 'trellis-probe/1.0' };
    for (const x of h.httpHeaders ?? []) headers[x.name] = x.value ?? '';
    const path = h.path ? (h.path.startsWith('/') ? h.path : `/${h.path}`) : '/';
    const target = `${https ? 'https' : 'http'}://${h.host || DEFAULT_PROBE_HOST}:${h.port}${path}`;
    const req = (https ? httpsRequest : httpRequest)({
      host: h.host || DEFAULT_PROBE_HOST, port: h.port, path, method: 'GET', headers, timeout: timeoutMs,
      // Kubernetes does not verify the certificate of an HTTPS probe target either.
      ...(https ? { rejectUnauthorized: false } : {}),
    }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(code >= 200 && code < 400 ? { healthy: true } : { healthy: false, message: `HTTP GET ${target}: status ${code}` });
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ healthy: false, message: `HTTP GET ${target}: ${(e as NodeJS.ErrnoException).code ?? e.message}` }));
    req.end();
  });
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (r: ProbeResult): void => { clearTimeout(t); s.destroy(); resolve(r); };
    const t = setTimeout(() => done({ healthy: false, message: `TCP ${host}:${port}: timed out after ${timeoutMs} ms` }), timeoutMs);
    s.once('connect', () => done({ healthy: true }));
    s.once('error', (e: NodeJS.ErrnoException) => done({ healthy: false, message: `TCP ${host}:${port}: ${e.code ?? e.message}` }));
  });
}

function execProbe(command: readonly string[], timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    execFile(command[0]!, command.slice(1), { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ healthy: true });
      const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
      const out = `${stderr || stdout}`.trim().slice(0, 200);
      const why = e.killed ? `timed out after ${timeoutMs} ms` : typeof e.code === 'number' ? `exit status ${e.code}` : (e.code ?? e.message);
      resolve({ healthy: false, message: `exec ${command.join(' ')}: ${why}${out ? `: ${out}` : ''}` });
    });
  });
}

/**
 * The success/failure thresholds: starts not ready; `record` returns the new state when it changed, else undefined.
 */
export class ProbeThresholds {
  readonly #success: number;
  readonly #failure: number;
  #healthy = false;
  #streak = 0;
  #reported = false;

  constructor(spec: Pick<ProbeSpec, 'successThreshold' | 'failureThreshold'>) {
    this.#success = Math.max(1, spec.successThreshold || 1);
    this.#failure = Math.max(1, spec.failureThreshold || 3);
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  record(result: ProbeResult): ProbeResult | undefined {
    if (result.healthy === this.#healthy) {
      this.#streak = 0;
      // The first failure is reported at once: the control plane learns why the workload is not ready yet.
      if (!this.#reported && !result.healthy) { this.#reported = true; return result; }
      return undefined;
    }
    this.#streak++;
    if (this.#streak < (result.healthy ? this.#success : this.#failure)) return undefined;
    this.#healthy = result.healthy;
    this.#streak = 0;
    this.#reported = true;
    return result;
  }
}

export interface ProbeRunnerOptions {
  readonly spec: ProbeSpec;
  /** Called with each change of state (and the first failure), never twice in a row with the same state. */
  readonly onChange: (result: ProbeResult) => void;
}

/** Runs the probe every period until the signal aborts. */
export class ProbeRunner {
  readonly #o: ProbeRunnerOptions;
  readonly #thresholds: ProbeThresholds;
  #last: ProbeResult | undefined;

  constructor(options: ProbeRunnerOptions) {
    this.#o = options;
    this.#thresholds = new ProbeThresholds(options.spec);
  }

  /** The last state reported (undefined before the first report). */
  get last(): ProbeResult | undefined {
    return this.#last;
  }

  async start(signal: AbortSignal): Promise<void> {
    const s = this.#o.spec;
    const periodMs = Math.max(1, s.periodSeconds || 10) * 1000;
    const timeoutMs = Math.max(1, s.timeoutSeconds || 1) * 1000;
    await sleep((s.initialDelaySeconds ?? 0) * 1000, signal);
    while (!signal.aborted) {
      const result = await probeOnce(s, timeoutMs);
      if (signal.aborted) break;
      const change = this.#thresholds.record(result);
      if (change) {
        this.#last = change;
        this.#o.onChange(change);
      }
      await sleep(periodMs, signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const done = (): void => { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
