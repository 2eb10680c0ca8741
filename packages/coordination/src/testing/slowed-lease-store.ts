import type { LeaseStore } from '../store.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A real store (PgLeaseStore) whose every statement answers `latencyMs` late,
 * on real time: the statement runs halfway through, the node hears of it at
 * the end. Set `latencyMs` at any moment; 0 passes calls straight through.
 */
export function slowedLeaseStore(store: LeaseStore): LeaseStore & { latencyMs: number } {
  const wrapped = { latencyMs: 0 } as LeaseStore & { latencyMs: number };
  for (const method of ['tryAcquire', 'renew', 'release', 'heartbeat', 'members', 'leader'] as const) {
    (wrapped as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
      const ms = wrapped.latencyMs;
      await sleep(ms / 2);
      const result = await (store[method] as (...a: unknown[]) => Promise<unknown>).apply(store, args);
      await sleep(ms - ms / 2);
      return result;
    };
  }
  return wrapped;
}
