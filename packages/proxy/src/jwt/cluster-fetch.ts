/**
 * Fetches a remote JWKS the way Envoy does: through the cluster named in `http_uri.cluster` (a host picked by the
 * cluster's balancer, the cluster's TLS settings), with the URI's authority and path. No cluster, no host, a
 * non-200 answer, a timeout or a body over 1 MiB is a failed fetch.
 */
import type { ClusterManager } from '../cluster/cluster-manager.js';
import type { JwksFetcher } from './key-source.js';
import { MAX_JWKS_BYTES } from './key-source.js';

export function clusterJwksFetcher(clusters: ClusterManager, now: () => number = Date.now): JwksFetcher {
  return async (uri, clusterName, timeoutMs) => {
    const rt = clusters.get(clusterName);
    if (!rt) throw new Error(`jwks: no cluster ${clusterName}`);
    const host = rt.hosts.pick({ hash: null, now: now() });
    if (!host) throw new Error(`jwks: cluster ${clusterName} has no available host`);
    const u = rt.upstream(host, false);
    if (u === 'no_secret') throw new Error(`jwks: cluster ${clusterName} has no TLS secret yet`);
    if (u.kind !== 'h1') throw new Error(`jwks: cluster ${clusterName} is HTTP/2 only`);
    const url = new URL(uri);
    const res = await u.pool.request({
      method: 'GET', path: `${url.pathname}${url.search}`, headers: { host: url.host, accept: 'application/json' },
      headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`jwks: ${uri} answered ${res.statusCode}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of res.body) {
      size += (c as Buffer).length;
      if (size > MAX_JWKS_BYTES) { res.body.destroy(); throw new Error(`jwks: ${uri} is larger than ${MAX_JWKS_BYTES} bytes`); }
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  };
}
