/**
 * The join-token admin API, mounted by the control plane on its HTTP port (15014, loopback by default):
 *
 *   POST   /v1/tokens      {namespace, workloadGroup, ttlSeconds?} → 201 {id, token, expiresAt, namespace, serviceAccount, workloadGroup}
 *   GET    /v1/tokens      → 200 [{id, namespace, serviceAccount, workloadGroup, createdAt, expiresAt, used, revoked}]
 *   DELETE /v1/tokens/:id  → 204, or 404
 *   GET    /v1/mesh        → 200 {trustDomain, clusterId, network, xdsAddress, rootCertsPem}
 *
 * Errors are `{code, message}` with 400 (bad body), 404 (unknown WorkloadGroup or token). The service account
 * comes from the WorkloadGroup's template, never from the request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TrellisError } from '@trellis/api';
import type { CertificateAuthority } from './authority.js';
import type { JoinTokens } from './join-tokens.js';

/** Structurally the control plane's `HttpRoute` (http/server.ts). */
export interface CaHttpRoute {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  handler(req: IncomingMessage, res: ServerResponse, params: Record<string, string>, body: unknown): Promise<void> | void;
}

export interface TokenRouteDeps {
  readonly tokens: JoinTokens;
  readonly ca: CertificateAuthority;
  /** The WorkloadGroup `name` in `ns`, or undefined when there is none. */
  lookupWorkloadGroup(ns: string, name: string): { serviceAccount: string } | undefined;
  mesh(): { trustDomain: string; clusterId: string; network: string; xdsAddress: string };
}

function send(res: ServerResponse, status: number, value?: unknown): void {
  if (value === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = `${JSON.stringify(value, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, { code, message });
}

const BODY_KEYS = new Set(['namespace', 'workloadGroup', 'ttlSeconds']);

export function tokenRoutes(deps: TokenRouteDeps): CaHttpRoute[] {
  const mint: CaHttpRoute = {
    method: 'POST',
    path: '/v1/tokens',
    async handler(_req, res, _params, body) {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        fail(res, 400, 'TRELLIS_ERR_BAD_REQUEST', 'body must be a JSON object {namespace, workloadGroup, ttlSeconds?}');
        return;
      }
      const b = body as Record<string, unknown>;
      const unknown = Object.keys(b).filter((k) => !BODY_KEYS.has(k));
      if (unknown.length > 0) {
        fail(res, 400, 'TRELLIS_ERR_BAD_REQUEST', `unknown field(s): ${unknown.join(', ')} (allowed: namespace, workloadGroup, ttlSeconds)`);
        return;
      }
      for (const k of ['namespace', 'workloadGroup'] as const) {
        if (typeof b[k] !== 'string' || b[k] === '') {
          fail(res, 400, 'TRELLIS_ERR_BAD_REQUEST', `${k}: required, a non-empty string`);
          return;
        }
      }
      if (b.ttlSeconds !== undefined && (typeof b.ttlSeconds !== 'number' || !Number.isInteger(b.ttlSeconds))) {
        fail(res, 400, 'TRELLIS_ERR_BAD_REQUEST', 'ttlSeconds: must be a whole number of seconds');
        return;
      }
      const namespace = b.namespace as string;
      const workloadGroup = b.workloadGroup as string;
      const group = deps.lookupWorkloadGroup(namespace, workloadGroup);
      if (!group) {
        fail(res, 404, 'TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN', `no WorkloadGroup ${namespace}/${workloadGroup}`);
        return;
      }
      const serviceAccount = group.serviceAccount || 'default';
      try {
        const minted = await deps.tokens.mint({ namespace, serviceAccount, workloadGroup }, b.ttlSeconds as number | undefined);
        send(res, 201, { ...minted, namespace, serviceAccount, workloadGroup });
      } catch (err) {
        if (err instanceof TrellisError) fail(res, 400, err.code, err.message);
        else throw err;
      }
    },
  };
  const list: CaHttpRoute = {
    method: 'GET',
    path: '/v1/tokens',
    handler(_req, res) {
      send(res, 200, deps.tokens.list());
    },
  };
  const revoke: CaHttpRoute = {
    method: 'DELETE',
    path: '/v1/tokens/:id',
    async handler(_req, res, params) {
      if (await deps.tokens.revoke(params.id)) send(res, 204);
      else fail(res, 404, 'TRELLIS_ERR_TOKEN_UNKNOWN', `no token with id ${params.id}`);
    },
  };
  const mesh: CaHttpRoute = {
    method: 'GET',
    path: '/v1/mesh',
    handler(_req, res) {
      send(res, 200, { ...deps.mesh(), rootCertsPem: deps.ca.trustBundlePem() });
    },
  };
  return [mint, list, revoke, mesh];
}
