export { DatabaseClockWatch } from './db-clock.js';
export { LeaderLease, type LeaseEvent } from './leader-lease.js';
export { createLeasePool, type LeasePoolOptions } from './lease-pool.js';
export {
  type LeaderLeaseOptions,
  maxRenewalsInFlight,
  type ResolvedLeaderLeaseOptions,
  resolveLeaderLeaseOptions,
} from './options.js';
export {
  type AcquireOptions,
  type AcquireResult,
  type LeaderRecord,
  type LeaseStore,
  type NodeRecord,
  type NodeRole,
  PgLeaseStore,
  type PreviousHolder,
  type RenewOptions,
  type RenewResult,
} from './store.js';
