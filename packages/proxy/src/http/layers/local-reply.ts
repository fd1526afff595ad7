/** Redirect and direct-response routes answer here without an upstream. */
import { type Layer, localReply } from '../context.js';

export const localReplyLayer: Layer = (next) => (ctx) => {
  const a = ctx.route!.action;
  if (a.kind === 'direct_response') {
    localReply(ctx, a.status, a.body);
    return;
  }
  if (a.kind === 'redirect') {
    const q = ctx.path.indexOf('?');
    const path0 = q < 0 ? ctx.path : ctx.path.slice(0, q);
    const query = q < 0 || a.stripQuery ? '' : ctx.path.slice(q);
    let path = a.path ?? path0;
    const m = ctx.route!.match;
    if (!a.path && a.prefixRewrite !== null && m.kind === 'prefix') path = a.prefixRewrite + path0.slice(m.value.length);
    const scheme = a.scheme ?? (ctx.conn.tls ? 'https' : 'http');
    let host = a.host ?? ctx.authority.replace(/:\d+$/, '');
    if (a.port) host = `${host}:${a.port}`;
    else if (!a.host && !a.scheme && /:\d+$/.test(ctx.authority)) host = ctx.authority;
    localReply(ctx, a.status, '', { location: `${scheme}://${host}${path}${a.path?.includes('?') ? '' : query}` });
    return;
  }
  next(ctx);
};
