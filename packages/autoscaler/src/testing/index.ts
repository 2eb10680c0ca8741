export { FakeIaas, type FakeIaasCall } from './fake-iaas.js';
export { clusterConfig, events, flush, harness, T0, useFakeTime } from './harness.js';
export { memberRow } from './member-row.js';
export { MemoryRegistry } from './memory-registry.js';
