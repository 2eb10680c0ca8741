import type { PreviousHolder } from '@faultline/coordination';
import type { Activation } from './query-engine.js';
import type { Followed } from './sync-server.js';

/** A node's last term as active. */
export interface OwnTerm {
  epoch: number;
  /** Its Thrift source opened: it took stats under this epoch. */
  served: boolean;
  /** Monotonic time it stopped acting (the lease lost); undefined while active. */
  endedAt: number | undefined;
  /** Another node's snapshot replaced its engine state since. */
  replaced: boolean;
}

export interface ActivationFacts {
  nodeId: string;
  /** Whom the lease was taken from, as the lease reported it (`silentForMs` as of `heardAt`). */
  previous: PreviousHolder | undefined;
  /** The last sync link this node followed as passive. */
  followed: Followed | undefined;
  lastTerm: OwnTerm | undefined;
  /** Monotonic time the lease reported the acquisition. */
  heardAt: number;
  now: number;
}

/**
 * How long members may have had no active to report to, as far as this
 * node can tell when it becomes active (issue "Robust under strain": the
 * grace after a takeover used to be a whole fault timeout every time, so a
 * lease that changed hands every few seconds kept every silent member from
 * its fault).
 * - Its own lease back (the previous epoch was its own term, which served,
 *   and no snapshot replaced its state since): since it stopped acting.
 * - Taken from the active it followed (that term's snapshot applied): the
 *   previous holder's silence in the lease table, or since the link last
 *   carried a message if that came first (that active may have gone on
 *   without this node: a link that dies silently, in a partition, never
 *   closes, so when it ended says nothing). The active sends nothing on an
 *   idle link (no keepalive): a quiet cluster then reads as a long gap, which
 *   gives members more time, never less (at most the grace period, the
 *   engine's cap), so no keepalive is needed for this bound to be safe.
 * In both, the previous holder's silence counted to now bounds it from
 * below. Otherwise the node cannot tell (its state may be stale): undefined,
 * and the engine gives its whole grace period.
 */
export function activationOf(facts: ActivationFacts): Activation {
  const { nodeId, previous, followed, lastTerm, heardAt, now } = facts;
  const silence = previous?.silentForMs === undefined ? undefined : previous.silentForMs + (now - heardAt);
  if (
    previous?.nodeId === nodeId &&
    lastTerm?.epoch === previous.epoch &&
    lastTerm.served &&
    !lastTerm.replaced &&
    lastTerm.endedAt !== undefined
  )
    return { resumed: true, unheardMs: Math.round(Math.max(now - lastTerm.endedAt, silence ?? 0)) };
  if (
    silence !== undefined &&
    followed?.synced &&
    followed.nodeId === previous?.nodeId &&
    followed.epoch === previous.epoch
  )
    return {
      resumed: false,
      unheardMs: Math.round(Math.max(silence, now - followed.lastMessageAt)),
    };
  return { resumed: false };
}
