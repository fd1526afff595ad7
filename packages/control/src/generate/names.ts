/**
 * Istio's names for generated xDS resources, so `istioctl`-literate operators and stock Envoy tooling recognise them.
 *
 * - clusters `outbound|<port>|<subset>|<host>` and `inbound|<port>||` (istio/istio pilot/pkg/model/service.go
 *   BuildSubsetKey / BuildInboundSubsetKey);
 * - route configurations `http.<port>` on sidecars and plain-HTTP gateway servers, `https.<port>.<portName>.<gw>.<ns>`
 *   for HTTPS gateway servers;
 * - listeners `virtualOutbound` (15001), `virtualInbound` (15006), `0.0.0.0_<port>` on gateways, `HOST:PORT` for
 *   proxyless gRPC;
 * - east-west/mTLS SNI `outbound_.<port>_.<subset>_.<host>`.
 */

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';
export const VIRTUAL_OUTBOUND = 'virtualOutbound';
export const VIRTUAL_INBOUND = 'virtualInbound';
export const OUTBOUND_CAPTURE_PORT = 15001;
export const INBOUND_CAPTURE_PORT = 15006;

/** SDS resource names served by the node agent (Istio's): the workload's key and chain, and the trust bundle. */
export const SDS_DEFAULT = 'default';
export const SDS_ROOTCA = 'ROOTCA';
/** Name of the bootstrap cluster that reaches the agent's SDS socket (Istio's `sds-grpc`). */
export const SDS_CLUSTER = 'sds-grpc';

export function outboundClusterName(port: number, subset: string | undefined, host: string): string {
  return `outbound|${port}|${subset ?? ''}|${host}`;
}

export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}

/** Parses an `outbound|port|subset|host` name; undefined for any other name. */
export function parseOutboundClusterName(name: string): { port: number; subset: string; host: string } | undefined {
  const parts = name.split('|');
  if (parts.length !== 4 || parts[0] !== 'outbound') return undefined;
  const port = Number(parts[1]);
  if (!Number.isInteger(port)) return undefined;
  return { port, subset: parts[2] ?? '', host: parts[3] ?? '' };
}

export function httpRouteName(port: number): string {
  return `http.${port}`;
}

/** Route config of an HTTPS (terminated) gateway server, as Istio names it. */
export function httpsGatewayRouteName(port: number, portName: string, gateway: string, namespace: string): string {
  return `https.${port}.${portName}.${gateway}.${namespace}`;
}

export function gatewayListenerName(port: number): string {
  return `0.0.0.0_${port}`;
}

export function outboundSni(port: number, subset: string | undefined, host: string): string {
  return `outbound_.${port}_.${subset ?? ''}_.${host}`;
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}
