/**
 * Loads the Envoy xDS/SDS v3 API and Istio's CA API once, for both gRPC services and `Any` encoding.
 *
 * The Envoy protos come from the `@grpc/grpc-js-xds` package's bundled copy (`deps/`); Istio's CA proto is this
 * package's own `protos/istio/v1/auth/ca.proto` (same names and field numbers as upstream). One protobufjs `Root`
 * is parsed and shared: `grpc` service definitions are built from it with proto-loader's `fromJSON`.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const xdsDeps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const ownProtos = join(dirname(fileURLToPath(import.meta.url)), '..', 'protos');

/** Where imports are resolved from, in order. */
export const PROTO_INCLUDE_DIRS: readonly string[] = Object.freeze([
  ownProtos,
  join(xdsDeps, 'envoy-api'),
  join(xdsDeps, 'xds'),
  join(xdsDeps, 'googleapis'),
  join(xdsDeps, 'protoc-gen-validate'),
]);

/** Entry files: services and every resource/extension type Trellis encodes or decodes. */
export const PROTO_FILES: readonly string[] = Object.freeze([
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/secret/v3/sds.proto',
  'envoy/service/status/v3/csds.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/core/v3/extension.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/config/trace/v3/zipkin.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'istio/v1/auth/ca.proto',
  'istio/networking/nds/v1/nds.proto',
]);

/** Options shared by every decode so values look the same whichever path produced them. */
const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

export interface LoadedProtos {
  /** protobufjs root with every type above, field names in proto (snake_case) form. */
  readonly root: protobuf.Root;
  /** gRPC package object: `grpc.envoy.service.discovery.v3.AggregatedDiscoveryService` etc. */
  readonly grpc: grpc.GrpcObject;
}

let loaded: LoadedProtos | undefined;

/**
 * Parses the protos (≈150 ms) on first call and returns the same frozen value afterwards. The cache is the one
 * deliberate module-level value: the protos are immutable data, identical for every caller in the process.
 */
export function loadProtos(): LoadedProtos {
  if (loaded) return loaded;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of PROTO_INCLUDE_DIRS) {
      const p = join(dir, target);
      if (existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync([...PROTO_FILES], { keepCase: true });
  root.resolveAll();
  const definition = protoLoader.fromJSON(root.toJSON({ keepComments: false }), LOADER_OPTIONS);
  loaded = Object.freeze({ root, grpc: grpc.loadPackageDefinition(definition) });
  return loaded;
}

/** Looks up a service constructor in the loaded gRPC package, e.g. `envoy.service.discovery.v3.AggregatedDiscoveryService`. */
export function grpcService(fullName: string): grpc.ServiceClientConstructor {
  let node: unknown = loadProtos().grpc;
  for (const part of fullName.split('.')) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function') throw new Error(`gRPC service ${fullName} is not in the loaded protos`);
  return node as grpc.ServiceClientConstructor;
}
