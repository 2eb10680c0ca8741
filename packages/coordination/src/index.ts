export { LeaderLease, type LeaderLeaseOptions, type LeaseEvent } from './leader-lease.js';
export { MemoryLeaseStore, MemoryLeaseTables } from './memory-store.js';
export {
  type AcquireResult,
  type LeaderRecord,
  type LeaseStore,
  type NodeRecord,
  type NodeRole,
  PgLeaseStore,
} from './store.js';
