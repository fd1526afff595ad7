/** Publishes one RequestEvent when the downstream response finishes or the stream closes. */
import { requestChannel } from '../../telemetry/events.js';
import type { Layer } from '../context.js';

export const telemetryLayer: Layer = (next) => (ctx) => {
  let done = false;
  const publish = () => {
    if (done) return;
    done = true;
    if (!ctx.res.writableFinished && ctx.responseFlags === '-' && !ctx.upgrade) ctx.responseFlags = 'DC';
    if (!requestChannel.hasSubscribers) return;
    const md = ctx.host?.metadata.istio as { workload?: string; namespace?: string } | undefined;
    requestChannel.publish({
      instance: ctx.conn.instance,
      reporter: ctx.conn.direction === 'outbound' ? 'source' : 'destination',
      protocol: (ctx.headers['content-type'] as string | undefined)?.startsWith('application/grpc') ? 'grpc' : 'http',
      cluster: ctx.clusterName,
      responseCode: ctx.res.statusCode,
      grpcStatus: ctx.grpcStatus,
      responseFlags: ctx.responseFlags,
      durationMs: Number(process.hrtime.bigint() - ctx.startNs) / 1e6,
      requestBytes: ctx.requestBytes,
      responseBytes: ctx.responseBytes,
      sourcePrincipal: ctx.conn.peerPrincipal,
      destinationPrincipal: ctx.upstreamPrincipal,
      mtls: ctx.conn.direction === 'inbound' ? ctx.conn.peerPrincipal !== null : ctx.upstreamPrincipal !== null,
      destinationWorkload: md?.workload ?? null,
      destinationWorkloadNamespace: md?.namespace ?? null,
    });
  };
  // One listener: a response emits 'close' after 'finish' (node:http on the next tick, HTTP/2 when its stream
  // closes). A hand-made upgrade response (see http-servers.ts) emits no 'close' after a local reply: it keeps 'finish'.
  if (ctx.upgrade) ctx.res.once('finish', publish);
  ctx.res.on('close', publish);
  next(ctx);
};
