export { buildEntry, entryName, SHARD as AUTOREGISTER_SHARD, WORKLOAD_GROUP_LABEL, type AnnouncedWorkload, type GroupLike } from './entry.js';
export { announcedWorkload, WorkloadAutoRegistry, type AutoRegistryOptions, type RefusalReason, type Timers, type WorkloadIdentity } from './registry.js';
export { workloadGroupRoutes } from './routes.js';
export { autoRegistrationMetrics } from './metrics.js';
export { AutoRegistration, type AutoRegistrationOptions } from './service.js';
