/** Adds `x-request-id` (a UUID) when the request has none, and forwarding headers Envoy sets. */
import { randomUUID } from 'node:crypto';
import type { Layer } from '../context.js';

export const requestIdLayer: Layer = (next) => (ctx) => {
  if (!ctx.headers['x-request-id']) ctx.headers['x-request-id'] = randomUUID();
  if (!ctx.headers['x-forwarded-proto']) ctx.headers['x-forwarded-proto'] = ctx.conn.tls ? 'https' : 'http';
  if (ctx.conn.direction === 'inbound') {
    // The downstream peer's identity, as Envoy's forward_client_cert_details SANITIZE_SET does for URI.
    if (ctx.conn.peerPrincipal) ctx.headers['x-forwarded-client-cert'] = `URI=${ctx.conn.peerPrincipal}`;
    else delete ctx.headers['x-forwarded-client-cert'];
  }
  next(ctx);
};
