/**
 * Zipkin v2 span reporter: finished spans are queued (bounded) and POSTed as JSON arrays to
 * `http://<collector>/api/v2/spans` in batches: when `batchSize` spans are waiting or every `flushIntervalMs`,
 * one request in flight at a time. A full queue drops new spans; a failed or refused POST drops its batch. Both are
 * counted (`trellis_tracing_spans_dropped_total`), never retried, never logged per span: tracing must not add load
 * to an outage.
 */
import http from 'node:http';
import type { Logger } from '../log.js';

/** A span in Zipkin's v2 JSON model. */
export interface ZipkinSpan {
  readonly traceId: string;
  readonly id: string;
  readonly parentId?: string;
  readonly name: string;
  readonly kind: 'CLIENT' | 'SERVER';
  /** Epoch microseconds. */
  readonly timestamp: number;
  /** Microseconds. */
  readonly duration: number;
  readonly localEndpoint: { readonly serviceName: string; readonly ipv4?: string; readonly ipv6?: string; readonly port?: number };
  readonly remoteEndpoint?: { readonly ipv4?: string; readonly ipv6?: string; readonly port?: number; readonly serviceName?: string };
  readonly tags: Readonly<Record<string, string>>;
  readonly shared?: boolean;
  readonly debug?: boolean;
}

/** Where to POST: `host:port` and the path (default `/api/v2/spans`). */
export interface CollectorTarget {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  /** `Host` header, when it differs from host:port (Envoy's `collector_hostname`). */
  readonly hostHeader?: string;
}

/** `host:port` / `[v6]:port` → target; null when it is not one. */
export function parseCollectorAddress(address: string, path = '/api/v2/spans'): CollectorTarget | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/[\]]+)):(\d{1,5})$/.exec(address.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2]!, port, path: path.startsWith('/') ? path : `/${path}` };
}

export interface ZipkinReporterOptions {
  readonly target: CollectorTarget;
  readonly logger: Logger;
  /** Spans held at most; more are dropped. Default 1000. */
  readonly maxQueue?: number;
  /** Spans per POST. Default 100. */
  readonly batchSize?: number;
  /** A partial batch is sent after this long. Default 1000 ms. */
  readonly flushIntervalMs?: number;
  /** POST timeout. Default 5000 ms. */
  readonly timeoutMs?: number;
}

export class ZipkinReporter {
  private queue: ZipkinSpan[] = [];
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private closed = false;
  private warned = false;
  reported = 0;
  dropped = 0;

  constructor(private readonly o: ZipkinReporterOptions) {}

  get target(): CollectorTarget {
    return this.o.target;
  }

  report(span: ZipkinSpan): void {
    if (this.closed || this.queue.length >= (this.o.maxQueue ?? 1000)) { this.dropped += 1; return; }
    this.queue.push(span);
    if (this.queue.length >= (this.o.batchSize ?? 100)) this.send();
    else if (!this.timer) {
      this.timer = setTimeout(() => { this.timer = null; this.send(); }, this.o.flushIntervalMs ?? 1000);
      this.timer.unref();
    }
  }

  /** Sends everything queued now; resolves when the collector has answered (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.queue.length || this.inFlight) {
      if (this.inFlight) await this.inFlight;
      else this.send();
    }
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.agent.destroy();
  }

  private send(): void {
    if (this.inFlight || this.queue.length === 0) return;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    const batch = this.queue.splice(0, this.o.batchSize ?? 100);
    this.inFlight = this.post(batch).then((ok) => {
      if (ok) this.reported += batch.length;
      else this.dropped += batch.length;
    }).finally(() => {
      this.inFlight = null;
      if (this.queue.length >= (this.o.batchSize ?? 100)) this.send();
      else if (this.queue.length && !this.timer && !this.closed) {
        this.timer = setTimeout(() => { this.timer = null; this.send(); }, this.o.flushIntervalMs ?? 1000);
        this.timer.unref();
      }
    });
  }

  private post(batch: readonly ZipkinSpan[]): Promise<boolean> {
    const t = this.o.target;
    const body = Buffer.from(JSON.stringify(batch));
    return new Promise<boolean>((resolve) => {
      const req = http.request({
        host: t.host, port: t.port, path: t.path, method: 'POST', agent: this.agent, timeout: this.o.timeoutMs ?? 5000,
        headers: { 'content-type': 'application/json', 'content-length': body.length, ...(t.hostHeader ? { host: t.hostHeader } : {}) },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300));
        res.on('error', () => resolve(false));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        // One warning per reporter, not per batch: an unreachable collector must not flood the log.
        if (!this.warned) { this.warned = true; this.o.logger.warn('zipkin: cannot report spans; dropping them', { collector: `${t.host}:${t.port}`, error: err.message }); }
        resolve(false);
      });
      req.end(body);
    });
  }
}
