export { ConsulAdapter, nextConsulIndex, type ConsulAdapterOptions, type FetchFunction } from './adapter.js';
export { convertConsulService, consulHostname, consulLabels, type ConsulHealthEntry, type ConsulConvertOptions, type ConsulConversion } from './convert.js';
export { Backoff, TokenBucket, systemClock, type Clock, type BackoffOptions } from '../runtime.js';
export { ShardPublisher } from '../shard-publisher.js';
