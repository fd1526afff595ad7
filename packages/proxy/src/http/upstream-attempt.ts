/**
 * One attempt of an upstream request, over a pooled HTTP/1.1 connection (undici `dispatch`, the cheapest Node client:
 * DESIGN.md §7) or a multiplexed HTTP/2 session (gRPC keeps trailers, grpc-status and deadlines end to end).
 *
 * The response head is offered to `onHead` before anything is written downstream: the upstream stage decides there
 * whether to forward it or to retry. A refused response is discarded (HTTP/1.1: its body is drained so the
 * connection can be reused, up to a bound; HTTP/2: the stream is cancelled) and the attempt ends as `discarded`.
 * `abort()` ends the attempt at once (its `finish` is called synchronously) and cancels the upstream request.
 */
import type http2 from 'node:http2';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type HttpContext, applyResponseHeaderOps } from './context.js';
import { forwardableResponseHeaders } from './hop-by-hop.js';

export type AbortWhy = 'per_try_timeout' | 'idle_timeout' | 'timeout' | 'downstream';

export type AttemptEnd =
  /** The response was forwarded and completed. */
  | { readonly kind: 'response'; readonly status: number }
  /** `onHead` refused the response (it will be retried). */
  | { readonly kind: 'discarded'; readonly status: number }
  /** No connection to the upstream could be made. */
  | { readonly kind: 'connect_failure'; readonly error: Error }
  /** The upstream reset or closed the request; `refused` for HTTP/2 REFUSED_STREAM / GOAWAY before processing. */
  | { readonly kind: 'reset'; readonly error: Error; readonly refused: boolean; readonly afterHead: boolean }
  | { readonly kind: 'aborted'; readonly why: AbortWhy; readonly afterHead: boolean };

export type RawHeaders = Record<string, string | string[] | undefined>;

export interface AttemptSpec {
  readonly ctx: HttpContext;
  /** Request headers to send (without `host` / pseudo headers). */
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer | Readable | NodeJS.ReadableStream | null;
  /** Per-try idle timeout (0 = none): the longest silence between response events of this attempt. */
  readonly idleTimeoutMs: number;
  /** The response head (status ≥ 200), before anything is written: true forwards it, false discards it. */
  readonly onHead: (status: number, headers: RawHeaders) => boolean;
  readonly finish: (end: AttemptEnd) => void;
}

export interface Attempt {
  abort(why: AbortWhy): void;
}

/** How long and how much of a discarded HTTP/1.1 response body is drained before the connection is closed instead. */
const DRAIN_MS = 2000;
const DRAIN_BYTES = 64 * 1024;

export function attemptH1(pool: Dispatcher, s: AttemptSpec): Attempt {
  const ctx = s.ctx;
  let controller: Dispatcher.DispatchController | null = null;
  let state: 'pending' | 'forwarding' | 'draining' | 'done' = 'pending';
  let idle: NodeJS.Timeout | undefined;
  let drainTimer: NodeJS.Timeout | undefined;
  let drained = 0;
  const end = (e: AttemptEnd) => { state = 'done'; clearTimeout(idle); s.finish(e); };
  const abort = (why: AbortWhy) => {
    if (state === 'done' || state === 'draining') return;
    const afterHead = state === 'forwarding';
    end({ kind: 'aborted', why, afterHead });
    controller?.abort(new Error(why));
  };
  const touch = () => { if (s.idleTimeoutMs > 0) { clearTimeout(idle); idle = setTimeout(() => abort('idle_timeout'), s.idleTimeoutMs); } };
  touch();
  pool.dispatch({ path: ctx.path, method: ctx.method, headers: s.headers, body: s.body as never, headersTimeout: 0, bodyTimeout: 0 }, {
    onRequestStart(c) { controller = c; if (state === 'done') c.abort(new Error('aborted')); },
    onResponseStart(c, status, raw) {
      if (status < 200) return;
      if (state !== 'pending' || ctx.res.headersSent) { if (state !== 'done') end({ kind: 'reset', error: new Error('response already answered'), refused: false, afterHead: false }); c.abort(new Error('response already answered')); return; }
      touch();
      const headers = raw as RawHeaders;
      if (!s.onHead(status, headers)) {
        state = 'draining';
        clearTimeout(idle);
        drainTimer = setTimeout(() => c.abort(new Error('drain')), DRAIN_MS);
        s.finish({ kind: 'discarded', status });
        return;
      }
      state = 'forwarding';
      const out = forwardableResponseHeaders(headers);
      applyResponseHeaderOps(ctx, out);
      const gs = headers['grpc-status'];
      if (gs !== undefined) ctx.grpcStatus = String(gs);
      // A Content-Length response from an HTTP/1.1 upstream cannot carry trailers.
      writeResponseHead(ctx, status, out, headers['content-length'] !== undefined && headers['transfer-encoding'] === undefined);
    },
    onResponseData(c, chunk) {
      if (state === 'draining') { drained += chunk.length; if (drained > DRAIN_BYTES) { clearTimeout(drainTimer); state = 'done'; c.abort(new Error('drain')); } return; }
      if (state !== 'forwarding') return;
      touch();
      ctx.responseBytes += chunk.length;
      if (!(ctx.res as NodeJS.WritableStream).write(chunk)) {
        c.pause();
        ctx.res.once('drain', () => c.resume());
      }
    },
    onResponseEnd(_c, trailers) {
      if (state === 'draining') { clearTimeout(drainTimer); state = 'done'; return; }
      if (state !== 'forwarding') return;
      if (ctx.h2 && trailers && Object.keys(trailers).length) {
        const t = forwardableResponseHeaders(trailers as RawHeaders);
        if (t['grpc-status'] !== undefined) ctx.grpcStatus = String(t['grpc-status']);
        ctx.res.addTrailers(t as Record<string, string>);
      }
      ctx.res.end();
      end({ kind: 'response', status: ctx.res.statusCode });
    },
    onResponseError(_c, err) {
      if (state === 'draining') { clearTimeout(drainTimer); state = 'done'; return; }
      if (state === 'done') return;
      // No onRequestStart yet: the request never had a connection.
      if (controller === null) end({ kind: 'connect_failure', error: err });
      else end({ kind: 'reset', error: err, refused: false, afterHead: state === 'forwarding' });
    },
  });
  return { abort };
}

export function attemptH2(session: http2.ClientHttp2Session, tls: boolean, s: AttemptSpec): Attempt {
  const ctx = s.ctx;
  let state: 'pending' | 'forwarding' | 'done' = 'pending';
  let idle: NodeJS.Timeout | undefined;
  let ready = false;
  let stream: http2.ClientHttp2Stream;
  const end = (e: AttemptEnd) => { state = 'done'; clearTimeout(idle); s.finish(e); };
  const abort = (why: AbortWhy) => {
    if (state === 'done') return;
    end({ kind: 'aborted', why, afterHead: state === 'forwarding' });
    if (!stream.closed) stream.close(8 /* CANCEL */);
  };
  const touch = () => { if (s.idleTimeoutMs > 0) { clearTimeout(idle); idle = setTimeout(() => abort('idle_timeout'), s.idleTimeoutMs); } };
  try {
    stream = session.request({ ...s.headers, ':method': ctx.method, ':path': ctx.path, ':authority': ctx.authority, ':scheme': tls ? 'https' : 'http' }, { endStream: s.body === null });
  } catch (err) {
    end({ kind: 'connect_failure', error: err as Error });
    return { abort: () => {} };
  }
  touch();
  stream.once('ready', () => { ready = true; });
  if (Buffer.isBuffer(s.body)) stream.end(s.body);
  else if (s.body) (s.body as NodeJS.ReadableStream).pipe(stream);
  // Node's HTTP/2 client emits 'response' on the next tick but DATA read in the same chunk synchronously, so the
  // body of a small response can come before its head: hold it until the head is written (writing it first would
  // send an implicit 200 head, and the real head would find the response started; the request then ended as UC).
  let early: Buffer[] | null = null;
  const forward = (chunk: Buffer) => {
    ctx.responseBytes += chunk.length;
    if (!(ctx.res as NodeJS.WritableStream).write(chunk)) {
      stream.pause();
      ctx.res.once('drain', () => stream.resume());
    }
  };
  stream.on('response', (raw) => {
    // A stream closed by us (downstream gone, timeout) may still deliver queued events: ignore them.
    if (state !== 'pending') return;
    const status = Number(raw[':status']);
    if (status < 200) return;
    if (ctx.res.headersSent) { end({ kind: 'reset', error: new Error('response already answered'), refused: false, afterHead: false }); stream.close(8); return; }
    touch();
    const headers = raw as RawHeaders;
    if (!s.onHead(status, headers)) {
      end({ kind: 'discarded', status });
      if (!stream.closed) stream.close(8 /* CANCEL */);
      return;
    }
    state = 'forwarding';
    const out = forwardableResponseHeaders(headers);
    applyResponseHeaderOps(ctx, out);
    if (headers['grpc-status'] !== undefined) ctx.grpcStatus = String(headers['grpc-status']);
    writeResponseHead(ctx, status, out);
    if (early) { const held = early; early = null; for (const c of held) forward(c); }
  });
  stream.on('data', (chunk: Buffer) => {
    if (state === 'done') return;
    touch();
    if (state === 'pending') { (early ??= []).push(chunk); return; }
    forward(chunk);
  });
  stream.on('trailers', (t) => {
    if (state !== 'forwarding') return;
    if (t['grpc-status'] !== undefined) ctx.grpcStatus = String(t['grpc-status']);
    if (ctx.h2) ctx.res.addTrailers(forwardableResponseHeaders(t as RawHeaders) as Record<string, string>);
  });
  stream.on('end', () => {
    if (state === 'done') return;
    if (state === 'pending') { end({ kind: 'reset', error: new Error('upstream stream ended without headers'), refused: false, afterHead: false }); return; }
    ctx.res.end();
    end({ kind: 'response', status: ctx.res.statusCode });
  });
  const failed = (err: Error) => {
    if (state === 'done') return;
    const code = (err as { code?: string }).code;
    if (state === 'pending' && (!ready || code === 'ERR_HTTP2_STREAM_CANCEL')) end({ kind: 'connect_failure', error: err });
    else end({ kind: 'reset', error: err, refused: state === 'pending' && (stream.rstCode === 7 || code === 'ERR_HTTP2_GOAWAY_SESSION'), afterHead: state === 'forwarding' });
  };
  stream.on('error', failed);
  stream.on('close', () => {
    if (state === 'done') return;
    failed(new Error(`upstream stream closed ${state === 'pending' ? 'before headers ' : ''}(code ${stream.rstCode})`));
  });
  return { abort };
}

/**
 * Writes the response head. A gRPC "trailers-only" response (grpc-status in the headers) is re-sent to an HTTP/2
 * downstream as headers plus trailers: Node's compat response always ends with a DATA frame, after which a
 * client would find no status.
 */
function writeResponseHead(ctx: HttpContext, status: number, out: Record<string, string | string[]>, noTrailers = false): void {
  ctx.upstreamHeadersNs = process.hrtime.bigint(); // access log %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% (telemetry)
  if (ctx.h2 && noTrailers && out['grpc-status'] === undefined && status !== 204 && status !== 205 && status !== 304 && ctx.method !== 'HEAD'
    && !String(out['content-type'] ?? '').startsWith('application/grpc')) {
    // Respond on the stream itself: the compat response's writeHead always asks for trailers (`waitForTrailers`),
    // which sends END_STREAM as a separate empty DATA frame after the body, one more TLS record and write per
    // response and one more read (and a WINDOW_UPDATE) at the peer. Without it, the last DATA frame carries
    // END_STREAM. Status, headersSent, 'finish' and 'close' of the compat response stay as they were.
    const res = ctx.res as http2.Http2ServerResponse;
    const stream = res.stream;
    if (stream && !stream.headersSent && !stream.destroyed) {
      res.statusCode = status;
      const h: http2.OutgoingHttpHeaders = { ...out, ':status': status };
      try {
        stream.respond(h);
        return;
      } catch {
        // invalid header for HTTP/2: let the compat path answer as before
      }
    }
  }
  if (ctx.h2 && out['grpc-status'] !== undefined) {
    const trailers: Record<string, string> = { 'grpc-status': String(out['grpc-status']) };
    if (out['grpc-message'] !== undefined) trailers['grpc-message'] = String(out['grpc-message']);
    delete out['grpc-status'];
    delete out['grpc-message'];
    ctx.res.addTrailers(trailers);
  }
  ctx.res.writeHead(status, out);
}

export function destroyDownstream(ctx: HttpContext): void {
  if (ctx.h2) (ctx.req as http2.Http2ServerRequest).stream.close(2 /* INTERNAL_ERROR */);
  else ctx.res.destroy();
}
