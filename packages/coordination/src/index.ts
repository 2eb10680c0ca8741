export { LeaderLease, type LeaseEvent } from './leader-lease.js';
export { type LeaderLeaseOptions, type ResolvedLeaderLeaseOptions, resolveLeaderLeaseOptions } from './options.js';
export {
  type AcquireResult,
  type LeaderRecord,
  type LeaseStore,
  type NodeRecord,
  type NodeRole,
  PgLeaseStore,
} from './store.js';
