/**
 * Request mirroring (`request_mirror_policies`, Istio's `mirror` / `mirrors` with `mirrorPercentage`): for each
 * policy whose fraction is drawn, a copy of the request (headers after the route's header operations, path after
 * rewrites, body buffered up to a bound) goes to the mirror cluster with the authority suffixed `-shadow`, fire and
 * forget (see upstream/shadow.ts). The caller's request continues at once and only ever sees the primary's answer.
 *
 * The body is copied without taking it from the primary: the copy listens to the same chunks the upstream reads,
 * attaching its listener only when a consumer starts reading (so it never starts the flow itself, and never
 * steals chunks). A body that is never read, or is read by someone who drops the listeners, is not mirrored.
 */
import type http2 from 'node:http2';
import type { Readable } from 'node:stream';
import { fractionHit } from '@trellis/api';
import type { ShadowSender, ShadowTicket } from '../../upstream/shadow.js';
import type { HttpContext, Layer } from '../context.js';

export interface MirrorLayerOptions {
  /** Uniform in [0, 1), for the mirror fractions; Math.random by default. */
  readonly random?: () => number;
}

export function mirrorLayer(sender: ShadowSender, o: MirrorLayerOptions = {}): Layer {
  const random = o.random ?? Math.random;
  return (next) => (ctx) => {
    const a = ctx.route?.action;
    if (!a || a.kind !== 'route' || a.requestMirrorPolicies.length === 0 || ctx.upgrade) { next(ctx); return; }
    const tickets: ShadowTicket[] = [];
    for (const m of a.requestMirrorPolicies) {
      if (!fractionHit(m.fraction, random)) continue;
      const t = sender.reserve(m.cluster, {
        method: ctx.method, path: ctx.path, authority: ctx.authority, keepAuthority: m.keepAuthority, headers: { ...ctx.headers }, downstreamH2: ctx.h2, timeoutMs: a.timeoutMs,
      });
      if (t) tickets.push(t);
    }
    if (tickets.length) copyBody(ctx, tickets);
    next(ctx);
  };
}

function hasBody(ctx: HttpContext): boolean {
  if (ctx.h2) return !(ctx.req as http2.Http2ServerRequest).stream.endAfterHeaders;
  const h = ctx.req.headers;
  return (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
}

/** Sends each ticket the request body once it is complete (or cancels them), without consuming it. */
function copyBody(ctx: HttpContext, tickets: readonly ShadowTicket[]): void {
  if (!hasBody(ctx)) { for (const t of tickets) t.send(null); return; }
  const req = ctx.req as Readable;
  const cancel = (why: 'body_too_large' | 'body_lost') => { for (const t of tickets) t.cancel(why); cleanup(); };
  if (req.readableDidRead || req.readableEnded) { cancel('body_lost'); return; }
  const max = tickets[0]!.maxBodyBytes;
  const declared = Number(ctx.req.headers['content-length'] ?? NaN);
  if (declared > max) { for (const t of tickets) t.cancel('body_too_large'); return; }
  const chunks: Buffer[] = [];
  let size = 0;
  let attached = false;
  let finished = false;
  const onData = (chunk: Buffer | string) => {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > max) { cancel('body_too_large'); return; }
    chunks.push(b);
  };
  // Attach just before the first real consumer does: adding a 'data' listener ourselves would start the flow
  // before the upstream is ready for it, and pausing the stream would stall a consumer relying on auto-resume.
  const onNewListener = (event: string | symbol) => {
    if (attached || (event !== 'data' && event !== 'readable')) return;
    attached = true;
    req.off('newListener', onNewListener);
    req.on('data', onData);
  };
  const onEnd = () => {
    if (finished) return;
    // Not attached (nobody read it; the server discarded it) or our listener was removed: the copy is incomplete.
    if (!attached || !req.listeners('data').includes(onData)) { cancel('body_lost'); return; }
    finished = true;
    const body = Buffer.concat(chunks);
    cleanup();
    for (const t of tickets) t.send(body);
  };
  const onClose = () => { if (!finished) cancel('body_lost'); };
  function cleanup(): void {
    finished = true;
    req.off('newListener', onNewListener);
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
    req.off('error', onClose);
    chunks.length = 0;
  }
  req.on('newListener', onNewListener);
  req.once('end', onEnd);
  req.once('close', onClose);
  req.once('error', onClose);
}
