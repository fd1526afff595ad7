/**
 * Chooses the cluster (weighted clusters by weight), applies request header add/remove (weighted cluster, route,
 * virtual host, route config, in Envoy's order), queues the weighted cluster's response header operations before the
 * route's, and applies the path/host rewrites; 503 (flag NC) when the cluster is unknown.
 */
import type { HeaderToAdd } from '@trellis/api';
import type { ClusterManager } from '../../cluster/cluster-manager.js';
import { type Layer, addHeader, flag, localReply } from '../context.js';

const NONE: readonly never[] = Object.freeze([]);

export function clusterPickLayer(clusters: ClusterManager, random: () => number = Math.random): Layer {
  return (next) => (ctx) => {
    const a = ctx.route!.action;
    if (a.kind !== 'route') return;
    let name = a.cluster ?? '';
    let adds: readonly HeaderToAdd[] = NONE;
    let removes: readonly string[] = NONE;
    if (a.weightedClusters) {
      const total = a.weightedClusters.reduce((s, c) => s + c.weight, 0);
      let r = random() * total;
      let chosen = a.weightedClusters[a.weightedClusters.length - 1];
      for (const c of a.weightedClusters) { r -= c.weight; if (r < 0) { chosen = c; break; } }
      name = chosen.name;
      adds = chosen.requestHeadersToAdd;
      removes = chosen.requestHeadersToRemove;
      ctx.responseHeadersToAdd.unshift(...chosen.responseHeadersToAdd);
      ctx.responseHeadersToRemove.push(...chosen.responseHeadersToRemove);
    }
    const route = ctx.route!;
    const vh = ctx.vhost!;
    const rc = ctx.routeConfig!;
    // Envoy's default order (most_specific_header_mutations_wins false, as Istio leaves it): weighted cluster, then
    // route, virtual host, route configuration, each level removing then adding; so on OVERWRITE the less specific
    // level wins, and a level's remove also drops what a more specific level added. (No arrays are built per
    // request: the common route has no header operations.)
    mutateRequest(ctx.headers, removes, adds);
    mutateRequest(ctx.headers, route.requestHeadersToRemove, route.requestHeadersToAdd);
    mutateRequest(ctx.headers, vh.requestHeadersToRemove, vh.requestHeadersToAdd);
    mutateRequest(ctx.headers, rc.requestHeadersToRemove, rc.requestHeadersToAdd);
    if (a.prefixRewrite !== null && route.match.kind !== 'regex') {
      const q = ctx.path.indexOf('?');
      const path = q < 0 ? ctx.path : ctx.path.slice(0, q);
      const rest = q < 0 ? '' : ctx.path.slice(q);
      const matched = route.match.kind === 'path' ? path : path.slice(0, route.match.value.length);
      let rewritten = a.prefixRewrite + path.slice(matched.length);
      if (!rewritten.startsWith('/')) rewritten = '/' + rewritten;
      ctx.path = rewritten.replace(/^\/\/+/, '/') + rest;
    } else if (a.regexRewrite) {
      const q = ctx.path.indexOf('?');
      const path = q < 0 ? ctx.path : ctx.path.slice(0, q);
      ctx.path = path.replace(a.regexRewrite.pattern, a.regexRewrite.substitution) + (q < 0 ? '' : ctx.path.slice(q));
    }
    if (a.hostRewrite) ctx.authority = a.hostRewrite;
    ctx.clusterName = name;
    const rt = clusters.get(name);
    if (!rt) {
      flag(ctx, 'NC');
      localReply(ctx, 503, 'no cluster');
      return;
    }
    ctx.cluster = rt;
    next(ctx);
  };
}

function mutateRequest(h: Record<string, string | string[]>, removes: readonly string[], adds: readonly HeaderToAdd[]): void {
  for (const n of removes) delete h[n];
  for (const op of adds) addHeader(h, op);
}
