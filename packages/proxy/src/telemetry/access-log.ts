/**
 * Access logs: one line per finished request / closed TCP connection, in the format the HCM or tcp_proxy asks for
 * (`access_log`: a file or stdout logger with a text or JSON format of Envoy command operators), or, when the proxy
 * is started with `--access-log FILE|off`, to that file in Istio's default JSON (or TEXT) format for every listener.
 *
 * Subscribes to the request and TCP channels (hot paths don't log). Writes are buffered and asynchronous: lines
 * are appended to a per-file buffer and written by libuv's thread pool, one write in flight per file, so a slow disk
 * or a stalled stdout reader never blocks the event loop; when a file's buffer is full, lines are dropped and counted
 * (`trellis_access_log_dropped_total`).
 */
import diagnostics_channel from 'node:diagnostics_channel';
import fs from 'node:fs';
import { hostname } from 'node:os';
import { type AccessLogConfig, type AccessLogFormat, type FormatSegment, type JsonFormatFields, ENVOY_DEFAULT_FORMAT, parseFormatString } from '@trellis/api';
import type { Logger } from '../log.js';
import type { AccessLogFacts, RequestEvent, TcpEvent } from './events.js';

type Value = string | number | null;

const NUMERIC = new Set(['RESPONSE_CODE', 'BYTES_RECEIVED', 'BYTES_SENT', 'DURATION', 'UPSTREAM_REQUEST_ATTEMPT_COUNT']);

function withoutPort(a: string): string {
  if (a.startsWith('[')) return a.slice(1, a.indexOf(']'));
  const i = a.lastIndexOf(':');
  return i > 0 && a.indexOf(':') === i ? a.slice(0, i) : a;
}

function header(f: AccessLogFacts, name: string): string | null {
  switch (name) {
    case ':method': return f.method;
    case ':path': return f.path;
    case ':authority': return f.authority;
    case 'x-envoy-original-path': return f.requestHeader(name);
    default: return f.requestHeader(name);
  }
}

type Getter = (f: AccessLogFacts) => Value;

const nullable = (v: string | null): Value => (v === '' ? null : v);

/** A command operator compiled to a getter (once per format, not per request). */
function compileOp(seg: Extract<FormatSegment, { kind: 'op' }>): Getter {
  const arg = seg.arg ?? '';
  const alt = seg.alt;
  let g: Getter;
  switch (seg.op) {
    case 'START_TIME': g = (f) => new Date(f.startTimeMs).toISOString(); break;
    case 'REQ': g = alt ? (f) => nullable(header(f, arg) ?? header(f, alt)) : (f) => nullable(header(f, arg)); break;
    case 'RESP':
      g = arg === 'x-envoy-upstream-service-time'
        ? (f) => (f.upstreamServiceTimeMs === null ? null : Math.floor(f.upstreamServiceTimeMs))
        : (f) => nullable(f.responseHeader(arg) ?? (alt ? f.responseHeader(alt) : null));
      break;
    case 'PROTOCOL': g = (f) => f.protocol; break;
    case 'RESPONSE_CODE': g = (f) => f.responseCode; break;
    case 'RESPONSE_CODE_DETAILS': g = (f) => f.responseCodeDetails; break;
    case 'RESPONSE_FLAGS': case 'RESPONSE_FLAGS_LONG': g = (f) => f.responseFlags; break;
    case 'CONNECTION_TERMINATION_DETAILS': g = (f) => f.connectionTerminationDetails; break;
    case 'BYTES_RECEIVED': g = (f) => f.bytesReceived; break;
    case 'BYTES_SENT': g = (f) => f.bytesSent; break;
    case 'DURATION': g = (f) => Math.floor(f.durationMs); break;
    case 'UPSTREAM_HOST': g = (f) => f.upstreamHost; break;
    case 'UPSTREAM_CLUSTER': case 'UPSTREAM_CLUSTER_RAW': g = (f) => f.upstreamCluster || null; break;
    case 'UPSTREAM_LOCAL_ADDRESS': g = (f) => f.upstreamLocalAddress; break;
    case 'UPSTREAM_TRANSPORT_FAILURE_REASON': g = (f) => f.upstreamTransportFailureReason; break;
    case 'DOWNSTREAM_LOCAL_ADDRESS': g = (f) => f.downstreamLocalAddress; break;
    case 'DOWNSTREAM_REMOTE_ADDRESS': case 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS': g = (f) => f.downstreamRemoteAddress; break;
    case 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT': g = (f) => withoutPort(f.downstreamRemoteAddress); break;
    case 'DOWNSTREAM_PEER_URI_SAN': g = (f) => f.downstreamPeerPrincipal; break;
    case 'UPSTREAM_PEER_URI_SAN': g = (f) => f.upstreamPeerPrincipal; break;
    case 'REQUESTED_SERVER_NAME': g = (f) => f.requestedServerName; break;
    case 'ROUTE_NAME': g = (f) => f.routeName || null; break;
    case 'TRACE_ID': g = (f) => f.traceId; break;
    case 'HOSTNAME': { const h = hostname(); g = () => h; break; }
    default: g = () => null;
  }
  const max = seg.maxLength;
  if (max !== null) { const inner = g; g = (f) => { const v = inner(f); return typeof v === 'string' ? v.slice(0, max) : v; }; }
  return g;
}

/** The value of one command operator (null = not available: `-` in text, `null` in JSON). */
export function operatorValue(seg: Extract<FormatSegment, { kind: 'op' }>, f: AccessLogFacts): Value {
  return compileOp(seg)(f);
}

type TextPart = string | Getter;

function compileText(segments: readonly FormatSegment[]): (f: AccessLogFacts) => string {
  const parts: TextPart[] = segments.map((s) => (s.kind === 'text' ? s.text : compileOp(s)));
  return (f) => {
    let out = '';
    for (const p of parts) {
      if (typeof p === 'string') out += p;
      else { const v = p(f); out += v === null ? '-' : String(v); }
    }
    return out;
  };
}

/** Text rendering of segments: operators without a value print `-`. */
export function renderText(segments: readonly FormatSegment[], f: AccessLogFacts): string {
  return compileText(segments)(f);
}

function jsonOf(v: Value): string {
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  return JSON.stringify(v);
}

/**
 * A JSON format compiled to one function writing the line directly (no intermediate object): a value that is one
 * operator keeps its type (numbers stay numbers, missing is null); mixed text is a string.
 */
function compileJson(fields: JsonFormatFields): (f: AccessLogFacts) => string {
  const parts: ((f: AccessLogFacts) => string)[] = [];
  let first = true;
  for (const [k, v] of Object.entries(fields)) {
    const prefix = `${first ? '' : ','}${JSON.stringify(k)}:`;
    first = false;
    if (Array.isArray(v)) {
      const segs = v as readonly FormatSegment[];
      const only = segs.length === 1 && segs[0].kind === 'op' ? segs[0] : null;
      if (only) {
        const g = compileOp(only);
        const numeric = NUMERIC.has(only.op);
        parts.push((f) => { const x = g(f); return prefix + jsonOf(numeric && typeof x === 'string' ? Number(x) : x); });
      } else {
        const t = compileText(segs);
        parts.push((f) => prefix + JSON.stringify(t(f)));
      }
    } else if (v !== null && typeof v === 'object') {
      const nested = compileJson(v as JsonFormatFields);
      parts.push((f) => prefix + nested(f));
    } else {
      const lit = prefix + JSON.stringify(v);
      parts.push(() => lit);
    }
  }
  return (f) => {
    let out = '{';
    for (const p of parts) out += p(f);
    return out + '}';
  };
}

/** A format compiled to `facts → line` (newline-terminated). `defaultSegments`: Envoy's default format. */
export function compileFormat(format: AccessLogFormat, defaultSegments: readonly FormatSegment[]): (f: AccessLogFacts) => string {
  if (format.kind === 'json') { const j = compileJson(format.fields); return (f) => j(f) + '\n'; }
  const t = compileText(format.kind === 'text' ? format.segments : defaultSegments);
  return (f) => { const line = t(f); return line.endsWith('\n') ? line : line + '\n'; };
}

/**
 * One log line (newline-terminated) for a request or connection. `defaultSegments`: Envoy's default format, for a
 * logger configured without one. (The logger itself compiles each format once; this is the uncached form.)
 */
export function formatLine(format: AccessLogFormat, f: AccessLogFacts, defaultSegments: readonly FormatSegment[]): string {
  return compileFormat(format, defaultSegments)(f);
}

export interface SinkOptions {
  /** Bytes buffered per file before lines are dropped. Default 4 MiB. */
  readonly maxBufferBytes?: number;
  /** Lines are written when this many bytes wait or `flushIntervalMs` after the first (Envoy: 64 KiB, 1 s). */
  readonly flushBytes?: number;
  readonly flushIntervalMs?: number;
  readonly logger: Logger;
  readonly onDrop: (lines: number) => void;
}

/**
 * An append-only file written asynchronously: lines collect in memory and go out together, when 64 KiB wait or
 * 100 ms after the first of them (one write per batch, not per line: each write is a thread-pool round trip), one
 * `fs.write` in flight at a time (on the libuv thread pool). `/dev/stdout` is opened like a file (the pipe or terminal behind fd 1),
 * or, where that cannot be opened (a socket), written through fd 1 itself.
 */
export class AccessLogSink {
  private fd: number | null = null;
  private ownFd = true;
  private queue: string[] = [];
  private queued = 0;
  private writing = false;
  private failed = false;
  private closed = false;
  private readonly max: number;
  private idle: (() => void)[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly flushBytes: number;
  private readonly flushIntervalMs: number;

  constructor(readonly path: string, private readonly o: SinkOptions) {
    this.max = o.maxBufferBytes ?? 4 << 20;
    this.flushBytes = Math.min(o.flushBytes ?? 64 << 10, this.max);
    this.flushIntervalMs = o.flushIntervalMs ?? 100;
    fs.open(path, 'a', (err, fd) => {
      if (err && path === '/dev/stdout') { this.fd = 1; this.ownFd = false; }
      else if (err) { this.failed = true; o.logger.error('access log: cannot open file; lines are dropped', { path, error: err.message }); this.drop(this.queue.length); this.queue = []; this.queued = 0; this.settle(); return; }
      else this.fd = fd;
      if (this.closed) { this.closeFd(); return; }
      this.pump();
    });
  }

  /** Queues a line; drops it (counted) when the buffer is full or the file could not be opened. */
  write(line: string): void {
    if (this.failed || this.closed) { this.drop(1); return; }
    if (this.queued + line.length > this.max) { this.drop(1); return; }
    this.queue.push(line);
    this.queued += line.length;
    if (this.writing) return;
    if (this.queued >= this.flushBytes) this.pump();
    else this.arm();
  }

  /** Resolves when everything queued so far is written (tests, shutdown). */
  flush(): Promise<void> {
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    const p = new Promise<void>((r) => this.idle.push(r));
    this.pump();
    return p;
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.closeFd();
  }

  private arm(): void {
    if (this.flushTimer || this.closed) return;
    this.flushTimer = setTimeout(() => { this.flushTimer = null; this.pump(); }, this.flushIntervalMs);
    this.flushTimer.unref();
  }

  private closeFd(): void {
    if (this.fd !== null && this.ownFd) fs.close(this.fd, () => {});
    this.fd = null;
  }

  private drop(n: number): void {
    if (n > 0) this.o.onDrop(n);
  }

  private settle(): void {
    if (this.writing || this.queue.length) return;
    for (const r of this.idle.splice(0)) r();
  }

  private pump(): void {
    if (this.writing || this.fd === null || this.queue.length === 0) { this.settle(); return; }
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    const buf = Buffer.from(this.queue.join(''));
    this.queue = [];
    this.queued = 0;
    this.writing = true;
    this.writeAll(buf, 0);
  }

  private writeAll(buf: Buffer, off: number): void {
    fs.write(this.fd!, buf, off, buf.length - off, null, (err, n) => {
      if (err && (err as NodeJS.ErrnoException).code === 'EAGAIN') {
        // A non-blocking pipe (fd 1) is full: try again shortly; new lines keep queueing (bounded).
        this.retryTimer = setTimeout(() => { this.retryTimer = null; this.writeAll(buf, off); }, 10);
        return;
      }
      if (err) {
        this.o.logger.warn('access log: write failed; lines dropped', { path: this.path, error: err.message });
        this.drop(buf.toString().split('\n').length - 1);
      } else if (off + n < buf.length) { this.writeAll(buf, off + n); return; }
      this.writing = false;
      if (this.closed) { this.settle(); return; }
      if (this.queued >= this.flushBytes || this.idle.length) this.pump();
      else if (this.queue.length) this.arm();
    });
  }
}

export interface AccessLoggerOptions {
  readonly instance: string;
  readonly logger: Logger;
  /**
   * `--access-log`: undefined = follow the control plane's config; null = off whatever the config says;
   * a config = log every request and connection there, in its format, instead of the control plane's.
   */
  readonly override?: AccessLogConfig | null;
  readonly maxBufferBytes?: number;
}

/** The access logger of one proxy instance. */
export class AccessLogger {
  private readonly sinks = new Map<string, AccessLogSink>();
  private droppedLines = 0;
  private readonly overrideList: readonly AccessLogConfig[] | null;
  private readonly defaultSegments = parseFormatString(ENVOY_DEFAULT_FORMAT, 'format');
  /** Formats compiled once per (frozen) config object. */
  private readonly compiled = new WeakMap<AccessLogFormat, (f: AccessLogFacts) => string>();
  private readonly onRequest = (m: unknown) => {
    const e = m as RequestEvent;
    if (e.instance !== this.o.instance || !e.detail) return;
    const configs = this.overrideList ?? e.accessLog ?? [];
    if (configs.length) this.log(configs, e.detail());
  };
  private readonly onTcp = (m: unknown) => {
    const e = m as TcpEvent;
    if (e.instance !== this.o.instance || e.kind !== 'close' || !e.detail) return;
    const configs = this.overrideList ?? e.detail.accessLog;
    if (configs.length) this.log(configs, e.detail);
  };

  constructor(private readonly o: AccessLoggerOptions) {
    this.overrideList = o.override === undefined ? null : o.override === null ? [] : [o.override];
    diagnostics_channel.subscribe('trellis:proxy:request', this.onRequest);
    diagnostics_channel.subscribe('trellis:proxy:tcp', this.onTcp);
  }

  get dropped(): number {
    return this.droppedLines;
  }

  /** Writes one line per config for these facts. */
  log(configs: readonly AccessLogConfig[], facts: AccessLogFacts): void {
    for (const c of configs) {
      let render = this.compiled.get(c.format);
      if (!render) { render = compileFormat(c.format, this.defaultSegments); this.compiled.set(c.format, render); }
      this.sink(c.path).write(render(facts));
    }
  }

  private sink(path: string): AccessLogSink {
    let s = this.sinks.get(path);
    if (!s) {
      s = new AccessLogSink(path, { logger: this.o.logger, maxBufferBytes: this.o.maxBufferBytes, onDrop: (n) => { this.droppedLines += n; } });
      this.sinks.set(path, s);
    }
    return s;
  }

  async flush(): Promise<void> {
    await Promise.all([...this.sinks.values()].map((s) => s.flush()));
  }

  async close(): Promise<void> {
    diagnostics_channel.unsubscribe('trellis:proxy:request', this.onRequest);
    diagnostics_channel.unsubscribe('trellis:proxy:tcp', this.onTcp);
    await Promise.all([...this.sinks.values()].map((s) => s.close()));
    this.sinks.clear();
  }
}
