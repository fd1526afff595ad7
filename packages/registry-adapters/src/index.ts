export {};
export { ConsulAdapter, type ConsulAdapterOptions } from './consul/index.js';
export { EurekaAdapter, type EurekaAdapterOptions } from './eureka/index.js';
export { KubernetesAdapter, IstioConfigSource, TokenReviewer, type KubernetesAdapterOptions, type IstioConfigSourceOptions } from './kubernetes/index.js';
export { TrellisAdapter, convertTrellisExport, type TrellisAdapterOptions } from './trellis/index.js';
