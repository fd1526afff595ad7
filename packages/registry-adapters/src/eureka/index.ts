export { EurekaAdapter, type EurekaAdapterOptions } from './adapter.js';
export {
  convertEurekaApp,
  applicationsOf,
  asArray,
  eurekaHashcode,
  eurekaHostname,
  eurekaInstanceKey,
  type EurekaApplication,
  type EurekaApplicationsResponse,
  type EurekaConversion,
  type EurekaConvertOptions,
  type EurekaInstance,
  type EurekaPort,
} from './convert.js';
