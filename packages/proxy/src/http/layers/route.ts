/** Picks the virtual host and route as RDS says; 404 (flag NR) when nothing matches. */
import type { RouteConfig } from '@trellis/api';
import { type Layer, flag, localReply } from '../context.js';
import { selectRoute, selectVirtualHost } from '../router.js';

export function routeLayer(routeConfigFor: (rds: string) => RouteConfig | undefined): Layer {
  return (next) => (ctx) => {
    const hcm = ctx.conn.hcm;
    const rc = hcm.routeConfig ?? (hcm.rds ? routeConfigFor(hcm.rds) : undefined) ?? null;
    ctx.routeConfig = rc;
    const vh = rc ? selectVirtualHost(rc, ctx.authority) : null;
    const route = vh ? selectRoute(vh, { authority: ctx.authority, path: ctx.path, header: (n) => (n === ':method' ? ctx.method : n === ':authority' ? ctx.authority : headerValue(ctx.headers[n])) }) : null;
    if (!vh || !route) {
      flag(ctx, 'NR');
      localReply(ctx, 404, '');
      return;
    }
    ctx.vhost = vh;
    ctx.route = route;
    // Most specific last so it wins on OVERWRITE: route config, virtual host, route (Envoy's default order).
    ctx.responseHeadersToAdd.push(...route.responseHeadersToAdd, ...vh.responseHeadersToAdd, ...rc!.responseHeadersToAdd);
    ctx.responseHeadersToRemove.push(...route.responseHeadersToRemove, ...vh.responseHeadersToRemove, ...rc!.responseHeadersToRemove);
    next(ctx);
  };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}
