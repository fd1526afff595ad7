export {};
export { ConsulAdapter, type ConsulAdapterOptions } from './consul/index.js';
export { EurekaAdapter, type EurekaAdapterOptions } from './eureka/index.js';
export { KubernetesAdapter, TokenReviewer, type KubernetesAdapterOptions } from './kubernetes/index.js';
