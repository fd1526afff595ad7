export * from './wire.js';
export * from './resolv-conf.js';
export * from './name-table.js';
export * from './cache.js';
export * from './proxy.js';
export * from './name-table-client.js';
