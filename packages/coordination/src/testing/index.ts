export { type MemoryLeaseStatement, MemoryLeaseStore, MemoryLeaseTables } from './memory-lease-store.js';
export { slowedLeaseStore } from './slowed-lease-store.js';
