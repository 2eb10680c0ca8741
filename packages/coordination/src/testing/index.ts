export { MemoryLeaseStore, MemoryLeaseTables } from './memory-lease-store.js';
