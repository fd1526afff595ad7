/** Picks the virtual host and route as RDS says; 404 (flag NR) when nothing matches. */
import type { RouteConfig } from '@trellis/api';
import { type HttpContext, type Layer, flag, localReply } from '../context.js';
import { selectRoute, selectVirtualHost } from '../router.js';

export function routeLayer(routeConfigFor: (rds: string) => RouteConfig | undefined): Layer {
  return (next) => (ctx) => {
    const hcm = ctx.conn.hcm;
    const rc = hcm.routeConfig ?? (hcm.rds ? routeConfigFor(hcm.rds) : undefined) ?? null;
    ctx.routeConfig = rc;
    const vh = rc ? selectVirtualHost(rc, ctx.authority) : null;
    // require_tls ALL (a gateway server's httpsRedirect): Envoy answers before any route is matched.
    if (vh?.requireTls === 'ALL' && !ctx.conn.tls) { localReply(ctx, 301, '', { location: `https://${ctx.authority}${ctx.path}` }); return; }
    const route = vh ? selectRoute(vh, new RouteInputOf(ctx)) : null;
    if (!vh || !route) {
      flag(ctx, 'NR');
      localReply(ctx, 404, '');
      return;
    }
    ctx.vhost = vh;
    ctx.route = route;
    // Most specific last so it wins on OVERWRITE: route config, virtual host, route (Envoy's default order).
    // (the common case has none: skip the spreads)
    if (route.responseHeadersToAdd.length || vh.responseHeadersToAdd.length || rc!.responseHeadersToAdd.length) ctx.responseHeadersToAdd.push(...route.responseHeadersToAdd, ...vh.responseHeadersToAdd, ...rc!.responseHeadersToAdd);
    if (route.responseHeadersToRemove.length || vh.responseHeadersToRemove.length || rc!.responseHeadersToRemove.length) ctx.responseHeadersToRemove.push(...route.responseHeadersToRemove, ...vh.responseHeadersToRemove, ...rc!.responseHeadersToRemove);
    next(ctx);
  };
}

/** The matcher's view of a request: a class, not a per-request closure (header matching is rare). */
class RouteInputOf {
  constructor(private readonly ctx: HttpContext) {}
  get authority(): string { return this.ctx.authority; }
  get path(): string { return this.ctx.path; }
  header(n: string): string | undefined {
    return n === ':method' ? this.ctx.method : n === ':authority' ? this.ctx.authority : headerValue(this.ctx.headers[n]);
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}
