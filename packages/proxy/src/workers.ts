/**
 * `--concurrency N`: N worker processes (node:cluster) that each run a whole proxy (their own ADS and SDS
 * streams, the same node id) and share the listening sockets; the kernel spreads connections (SCHED_NONE).
 * The primary owns the admin, Prometheus and health ports and answers from the workers' private status ports:
 * readiness when every worker is ready, Prometheus and `/stats`/`/clusters` counters summed across workers,
 * `/config_dump` and `/listeners` from the first worker, `/logging` and `/drain_listeners` sent to all.
 */
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import type { Logger } from './log.js';
import type { SystemdNotifier } from '@trellis/native';

export interface WorkerPorts {
  readonly admin: number;
  readonly prometheus: number;
  readonly health: number;
}

interface PortsMessage { type: 'trellis:ports'; ports: WorkerPorts }
interface ReadyMessage { type: 'trellis:ready' }

/** In a worker: tell the primary this worker applied its first complete config (the primary then sends READY=1). */
export function reportWorkerReady(): void {
  process.send?.({ type: 'trellis:ready' } satisfies ReadyMessage);
}

/** In a worker: tell the primary where this worker's status servers listen. */
export function reportWorkerPorts(ports: WorkerPorts): void {
  process.send?.({ type: 'trellis:ports', ports } satisfies PortsMessage);
}

/**
 * Sums sample lines with the same series key across workers (Prometheus text: `name{labels} value`; admin text:
 * `key: value` or `a::b::value`). Lines whose value is not a number are taken from the first worker.
 */
export function sumLines(texts: readonly string[], split: (line: string) => [string, string] | null): string {
  const order: string[] = [];
  const values = new Map<string, { sep: string; sum: number | null; raw: string }>();
  for (const t of texts) for (const line of t.split('\n')) {
    if (!line) continue;
    const kv = split(line);
    if (!kv) { if (!values.has(line)) { values.set(line, { sep: '', sum: null, raw: line }); order.push(line); } continue; }
    const [key, value] = kv;
    const n = Number(value);
    const cur = values.get(key);
    if (!cur) { values.set(key, { sep: line.slice(key.length, line.length - value.length), sum: Number.isFinite(n) ? n : null, raw: line }); order.push(key); continue; }
    if (cur.sum !== null && Number.isFinite(n)) cur.sum += n;
  }
  return order.map((k) => { const v = values.get(k)!; return v.sum === null ? v.raw : `${k}${v.sep}${v.sum}`; }).join('\n') + '\n';
}

const promSplit = (line: string): [string, string] | null => {
  if (line.startsWith('#')) return null;
  const i = line.lastIndexOf(' ');
  return i > 0 ? [line.slice(0, i), line.slice(i + 1)] : null;
};
const adminSplit = (line: string): [string, string] | null => {
  const i = line.lastIndexOf('::');
  const j = line.lastIndexOf(': ');
  if (i > 0 && i > j) return [line.slice(0, i), line.slice(i + 2)];
  if (j > 0) return [line.slice(0, j), line.slice(j + 2)];
  return null;
};

export interface PrimaryOptions {
  readonly concurrency: number;
  readonly ports: WorkerPorts;
  readonly adminAddress: string;
  readonly statusAddress: string;
  readonly drainTimeMs: number;
  readonly logger: Logger;
  /**
   * systemd notify: under `Type=notify` only the main process (this primary) may notify, so it sends `READY=1` once
   * every worker is ready, the `WATCHDOG=1` pings and `STOPPING=1`.
   */
  readonly notifier?: SystemdNotifier;
}

/** Runs the primary: forks workers (re-running this script), restarts crashed ones, fronts their status ports. */
export async function runPrimary(o: PrimaryOptions): Promise<void> {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const ports = new Map<Worker, WorkerPorts>();
  let stopping = false;
  const readyWorkers = new Set<Worker>();
  let notifiedReady = false;
  o.notifier?.startWatchdog();
  const fork = () => {
    const w = cluster.fork({ TRELLIS_WORKER: '1' });
    w.on('message', (m: PortsMessage | ReadyMessage) => {
      if (m?.type === 'trellis:ports') ports.set(w, m.ports);
      else if (m?.type === 'trellis:ready') {
        readyWorkers.add(w);
        if (!notifiedReady && readyWorkers.size >= o.concurrency) { notifiedReady = true; o.notifier?.ready(`${o.concurrency} workers ready`); }
      }
    });
    w.on('exit', (code, signal) => {
      ports.delete(w);
      readyWorkers.delete(w);
      if (!stopping) { o.logger.error('worker exited; starting another', { code, signal }); fork(); }
    });
  };
  for (let i = 0; i < o.concurrency; i++) fork();

  const fanOut = async (which: keyof WorkerPorts, path: string, method: string): Promise<{ status: number; body: string; type: string }[]> => {
    const all = [...ports.values()];
    return Promise.all(all.map(async (p) => {
      try {
        const r = await fetch(`http://127.0.0.1:${p[which]}${path}`, { method });
        return { status: r.status, body: await r.text(), type: r.headers.get('content-type') ?? 'text/plain' };
      } catch (err) {
        return { status: 503, body: `worker unreachable: ${(err as Error).message}\n`, type: 'text/plain' };
      }
    }));
  };
  const serve = (which: keyof WorkerPorts, host: string, port: number, answer: (path: string, method: string) => Promise<{ status: number; body: string; type: string }>) => {
    const server = http.createServer((req, res) => {
      answer(req.url ?? '/', req.method ?? 'GET').then((a) => { res.writeHead(a.status, { 'content-type': a.type }); res.end(a.body); }, (err: Error) => { res.writeHead(500); res.end(err.message); });
    });
    server.listen(port, host);
    void which;
    return server;
  };
  const notReady = { status: 503, body: 'not ready: workers starting\n', type: 'text/plain' };
  const servers = [
    serve('health', o.statusAddress, o.ports.health, async (path, method) => {
      const rs = await fanOut('health', path, method);
      if (rs.length < o.concurrency) return notReady;
      const bad = rs.find((r) => r.status !== 200);
      return bad ?? rs[0];
    }),
    serve('prometheus', o.statusAddress, o.ports.prometheus, async (path, method) => {
      const rs = await fanOut('prometheus', path, method);
      if (!rs.length) return notReady;
      return { status: 200, body: sumLines(rs.map((r) => r.body), promSplit), type: rs[0].type };
    }),
    serve('admin', o.adminAddress, o.ports.admin, async (path, method) => {
      const rs = await fanOut('admin', path, method);
      if (!rs.length) return notReady;
      const p = path.split('?')[0];
      if ((p === '/stats' && !path.includes('format=')) || p === '/clusters') return { status: 200, body: sumLines(rs.map((r) => r.body), adminSplit), type: 'text/plain' };
      if (p === '/stats') return { status: 200, body: sumLines(rs.map((r) => r.body), promSplit), type: rs[0].type };
      if (p === '/ready') return rs.find((r) => r.status !== 200) ?? rs[0];
      return rs[0];
    }),
  ];
  o.logger.info('primary started', { workers: o.concurrency, admin: o.ports.admin, prometheus: o.ports.prometheus, health: o.ports.health });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    o.notifier?.stopping();
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    const deadline = setTimeout(() => process.exit(0), o.drainTimeMs + 2000);
    const check = setInterval(() => {
      if (Object.keys(cluster.workers ?? {}).length === 0) { clearInterval(check); clearTimeout(deadline); for (const s of servers) s.close(); process.exit(0); }
    }, 50);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
