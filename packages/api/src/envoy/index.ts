/** Decoders of Envoy xDS/SDS resources (as `decodeAny` returns them) into typed, frozen values the proxy uses. */
export { EnvoyResourceError } from './read.js';
export * from './common.js';
export * from './filter-configs.js';
export * from './fault.js';
export * from './cors.js';
export * from './listener.js';
export * from './access-log.js';
export * from './route.js';
export * from './jwt-authn.js';
export * from './cluster.js';
export * from './endpoint.js';
export * from './secret.js';
export * from './resource.js';
export * from './rbac.js';
