/**
 * Adds `x-request-id` (a UUID) when the request has none, and the forwarding headers Envoy sets. An edge HCM
 * (`use_remote_address`, gateways) trusts nothing the client says about the connection: it appends the peer's
 * address to `x-forwarded-for`, overwrites `x-forwarded-proto` with the downstream scheme and sets
 * `x-envoy-external-address`; elsewhere `x-forwarded-proto` is only filled in when absent.
 */
import { randomUUID } from 'node:crypto';
import type { Layer } from '../context.js';

export const requestIdLayer: Layer = (next) => (ctx) => {
  if (!ctx.headers['x-request-id']) ctx.headers['x-request-id'] = randomUUID();
  const scheme = ctx.conn.tls ? 'https' : 'http';
  if (ctx.conn.hcm.useRemoteAddress) {
    const xff = ctx.headers['x-forwarded-for'];
    const prior = Array.isArray(xff) ? xff.join(', ') : xff;
    ctx.headers['x-forwarded-for'] = prior ? `${prior}, ${ctx.conn.sourceIp}` : ctx.conn.sourceIp;
    ctx.headers['x-forwarded-proto'] = scheme;
    ctx.headers['x-envoy-external-address'] = ctx.conn.sourceIp;
  } else if (!ctx.headers['x-forwarded-proto']) ctx.headers['x-forwarded-proto'] = scheme;
  if (ctx.conn.direction === 'inbound') {
    // The downstream peer's identity, as Envoy's forward_client_cert_details SANITIZE_SET does for URI.
    if (ctx.conn.peerPrincipal) ctx.headers['x-forwarded-client-cert'] = `URI=${ctx.conn.peerPrincipal}`;
    else delete ctx.headers['x-forwarded-client-cert'];
  }
  next(ctx);
};
