export { RegistryManager, type RegistryManagerOptions } from './manager.js';
export { planRegistries, registryDeclarations, type AdapterPlan, type PlanProblem, type PlanEnvironment, type Plans } from './declared.js';
