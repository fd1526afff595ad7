export {};
export * from './consul/index.js';
export * from './eureka/index.js';
export * from './kubernetes/index.js';
export * from './ca/fake-ca.js';
export * from './ca/sds-client.js';
export * from './fake-ads/index.js';
export * from './fake-sds/index.js';
export * from './xds/ads-client.js';
