export { RegistrationStream, HEALTH_TYPE_URL, type RegistrationStreamOptions } from './client.js';
export { ProbeRunner, ProbeThresholds, parseProbe, probeOnce, readProbeFile, PROBE_FILE, type ProbeResult, type ProbeSpec } from './probe.js';
export { WorkloadRegistrar, defaultWorkloadIp, parseLabels, registrationNode, type RegistrarOptions } from './registrar.js';
