export * from './errors.js';
export * from './type-urls.js';
export * from './protos.js';
export * from './any.js';
export * from './spiffe.js';
export * from './envoy/index.js';
