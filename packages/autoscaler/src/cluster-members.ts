import type { CartridgeMemberIdentity, Iaas, MemberInstance, TerminateResult } from '@faultline/cloud-controller';
import { type Clock, ClosedError, type Logger } from '@faultline/core';
import type { ClusterSink, FaultTimes } from './decisions.js';
import { activatedAtOf, baseOf, isLive, type LiveMember, type MemberContext } from './member.js';
import type { ClusterPolicy } from './policy.js';
import { RegistryError } from './registry.js';
import type { SerialQueue } from './serial-queue.js';

/**
 * How a spawn or a terminate of a member ended, reported once its effects
 * on the context are done (persisted, announced, decided):
 *
 * - `spawned`      the member has its instance and was announced (MemberCreatedEvent);
 * - `spawnFailed`  the spawn failed and the member was removed;
 * - `terminated`   the member is gone and was removed (MemberRemoved): its
 *                  terminate finished, or its instance was found not running.
 */
export type MemberCompletion =
  | { type: 'spawned'; memberId: string; instance: MemberInstance }
  | { type: 'spawnFailed'; memberId: string; error: unknown }
  /** The registry did not record the member: the spawn never started (no orphan), the member was removed. */
  | { type: 'spawnNotRecorded'; memberId: string }
  | { type: 'terminated'; memberId: string; epoch: number | undefined };

/** What ClusterMembers counted: spawns that worked or failed, terminates that finished. */
export interface MemberCounts {
  spawned: number;
  spawnFailed: number;
  terminated: number;
}

export interface ClusterMembersOptions {
  policy: ClusterPolicy;
  iaas: Iaas;
  sink: ClusterSink;
  clock: Clock;
  log: Logger;
  /** The monitor's queue: completions of spawns and terminations run on it. */
  queue: SerialQueue;
  newMemberId(clusterId: string): string;
  /** Grace between the soft and the forced stop; undefined: the driver's default. */
  terminateGraceMs: number | undefined;
  /** Receives every completion, on the queue. */
  completed(completion: MemberCompletion): void;
}

/**
 * The members of one cluster and what is done to them: the context map, and
 * spawns and terminations through the Iaas. Those run outside the monitor's
 * queue (a slow spawn must not delay another member's fault) and queue their
 * completion on it, so every state change still happens one at a time; what
 * follows a completion is the monitor's to decide (`completed`).
 */
export class ClusterMembers {
  private readonly policy: ClusterPolicy;
  private readonly iaas: Iaas;
  private readonly sink: ClusterSink;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly queue: SerialQueue;
  private readonly newMemberId: (clusterId: string) => string;
  private readonly terminateGraceMs: number | undefined;
  private readonly completed: (completion: MemberCompletion) => void;
  private readonly map = new Map<string, MemberContext>();
  private readonly effects = new Set<Promise<unknown>>();
  /** Members with a terminate call under way. */
  private readonly stopping = new Set<string>();
  /** Removed members whose leftovers are being reaped. */
  private readonly reaping = new Set<string>();
  /** Removed members the Iaas could not stop completely ('stuck'): terminated again every tick. */
  private readonly leftovers = new Set<string>();
  private readonly counted: MemberCounts = { spawned: 0, spawnFailed: 0, terminated: 0 };
  /** Aborted by close(): drains under way end without stopping their members (the next owner finishes them). */
  private readonly closing = new AbortController();

  constructor(options: ClusterMembersOptions) {
    this.policy = options.policy;
    this.iaas = options.iaas;
    this.sink = options.sink;
    this.clock = options.clock;
    this.log = options.log;
    this.queue = options.queue;
    this.newMemberId = options.newMemberId;
    this.terminateGraceMs = options.terminateGraceMs;
    this.completed = options.completed;
  }

  get size(): number {
    return this.map.size;
  }

  get counts(): MemberCounts {
    return { ...this.counted };
  }

  get(memberId: string): MemberContext | undefined {
    return this.map.get(memberId);
  }

  all(): MemberContext[] {
    return [...this.map.values()];
  }

  liveCount(): number {
    let n = 0;
    for (const m of this.map.values()) if (isLive(m)) n += 1;
    return n;
  }

  /**
   * Members that count toward the cluster's size for the minimum rule and a
   * scale up: every one in the context but those draining. A draining member
   * leaves by the rules' own decision and may take the whole drain timeout
   * to go; counting it would leave a faulted member unreplaced, or a scale
   * up held, for that long. A member stopped without a drain (a fault) still
   * counts until it is removed: its replacement follows its removal.
   */
  countedCount(): number {
    let n = 0;
    for (const m of this.map.values()) if (!(m.state === 'Terminating' && m.drainUntil !== undefined)) n += 1;
    return n;
  }

  /** Whether the member is this cluster's: in the context, or its leftovers are being stopped. */
  knows(memberId: string): boolean {
    return this.map.has(memberId) || this.reaping.has(memberId) || this.leftovers.has(memberId);
  }

  /** Records a new context of a member and persists it; resolves whether the row was written. */
  set(member: MemberContext): Promise<boolean> {
    this.map.set(member.memberId, member);
    return this.sink.persist(member);
  }

  /** Adopted after a restart: already persisted. */
  adopt(member: MemberContext): void {
    this.map.set(member.memberId, member);
  }

  spawn(
    action: 'MemberSpawnAction' | 'ScaleUpAction',
    reason: string,
    epoch: number | undefined,
    partition: { id: string; networkPartitionId: string },
    replaces?: string,
  ): void {
    const { policy } = this;
    let memberId = this.newMemberId(policy.id);
    while (this.map.has(memberId)) memberId = this.newMemberId(policy.id);
    const identity: CartridgeMemberIdentity = {
      memberId,
      clusterId: policy.id,
      clusterInstanceId: policy.clusterInstanceId,
      networkPartitionId: partition.networkPartitionId,
      partitionId: partition.id,
      cartridgeType: policy.cartridgeType,
    };
    // Intent before act: the Created row is in the registry before the Iaas starts anything, so a
    // restart finds (Iaas.discover) and owns whatever the spawn started, never an orphan.
    const intent = this.set({ ...identity, state: 'Created', createdAt: this.clock.now(), instance: undefined });
    this.sink.decide({ action, memberId, reason, epoch, ...(replaces === undefined ? {} : { replaces }) });
    this.effect(
      intent.then((recorded) => {
        if (!recorded) return this.queue.run(() => this.notRecorded(memberId));
        return this.iaas.spawn({ ...identity, workload: { latencyMs: policy.workloadLatencyMs } }).then(
          (instance) => this.queue.run(() => this.spawned(memberId, instance)),
          (error: unknown) => this.queue.run(() => this.failed(memberId, error)),
        );
      }),
    );
  }

  /**
   * Terminating, then (once the Iaas is done) removed. With `drain` (a member
   * that still serves: scale down, max rule) and a cluster drain timeout, the
   * member is draining first: its row keeps when the drain ends at the
   * latest (`drainUntil`), `topology/MemberReadyToShutdownEvent` says its
   * readiness is gone, and the Iaas lets its workload finish what is in
   * flight. A faulted member is stopped at once.
   */
  terminate(member: LiveMember, reason: string, epoch: number | undefined, drain = false): void {
    const now = this.clock.now();
    const drainMs = drain && member.instance !== undefined ? this.policy.drainTimeoutMs : 0;
    const terminating: MemberContext = {
      ...baseOf(member),
      state: 'Terminating',
      reason,
      since: now,
      activatedAt: activatedAtOf(member),
      ...(drainMs > 0 ? { drainUntil: now + drainMs } : {}),
    };
    const intent = this.set(terminating);
    if (drainMs > 0) {
      this.log.info('member draining', {
        event: 'autoscaler.member_draining',
        memberId: member.memberId,
        reason,
        drainTimeoutMs: drainMs,
      });
      this.sink.announce('MemberReadyToShutdownEvent', terminating, reason);
    }
    this.launchTerminate(member.memberId, epoch, intent);
  }

  /**
   * What is left of a Terminating member's drain, ms (0: none, or its time is
   * up). Never more than the cluster's drain timeout: a drainUntil written by
   * a node whose clock ran ahead, or edited by hand, does not hold a member
   * past it.
   */
  private drainLeft(memberId: string): number {
    const member = this.map.get(memberId);
    if (member?.state !== 'Terminating' || member.drainUntil === undefined) return 0;
    const left = member.drainUntil - this.clock.now();
    return Number.isFinite(left) ? Math.min(Math.max(0, left), this.policy.drainTimeoutMs) : 0;
  }

  /**
   * What is left of a draining member's delay (`drainDelayMs` from its
   * `since`), during which its workload still takes new requests while load
   * balancers read the mark; never past its drainUntil. A restart measures it
   * from the new life's `since`: at most one more delay, within the drain.
   */
  private drainDelayLeft(memberId: string): number {
    const member = this.map.get(memberId);
    if (member?.state !== 'Terminating' || member.drainUntil === undefined) return 0;
    const end = Math.min(member.since + this.policy.drainDelayMs, member.drainUntil);
    const left = end - this.clock.now();
    return Number.isFinite(left) ? Math.min(Math.max(0, left), this.policy.drainDelayMs) : 0;
  }

  /** The Iaas terminate, after the drain delay, with what is left of the drain. */
  private async stop(memberId: string): Promise<TerminateResult> {
    const { signal } = this.closing;
    const delayMs = this.drainDelayLeft(memberId);
    if (delayMs > 0) await this.pause(delayMs);
    // Only a drain is handed over at a close; a member stopped without one is stopped, as close() promises.
    if (signal.aborted && this.drainLeft(memberId) > 0) throw new ClosedError('cluster members (drain aborted)');
    // The drain is bounded by the persisted drainUntil: a retry, a restart or a takeover waits
    // only for what is left of it, never for a second full drain.
    return this.iaas.terminate(memberId, { graceMs: this.terminateGraceMs, drainMs: this.drainLeft(memberId), signal });
  }

  /** `ms` on the clock, or less if close() comes first. */
  private pause(ms: number): Promise<void> {
    const { signal } = this.closing;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.clock.clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.clock.setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Every tick: terminations that failed or were interrupted are tried again, leftovers reaped again. */
  retryStopping(): void {
    for (const memberId of this.leftovers) this.reap(memberId);
    for (const member of this.map.values()) {
      if (member.state === 'Terminating' && !this.stopping.has(member.memberId)) {
        this.launchTerminate(member.memberId, undefined, this.sink.persist(member));
      }
    }
  }

  /** Out of the context, Terminated in the registry, MemberTerminatedEvent on the topology. */
  remove(member: MemberContext, reason: string, epoch: number | undefined, fault?: FaultTimes): void {
    const gone: MemberContext = {
      ...baseOf(member),
      state: 'Terminated',
      reason,
      terminatedAt: this.clock.now(),
      activatedAt: activatedAtOf(member),
    };
    this.map.delete(member.memberId);
    this.sink.persist(gone);
    this.sink.decide({ action: 'MemberRemoved', memberId: member.memberId, reason, epoch, fault });
    if (member.instance) this.sink.announce('MemberTerminatedEvent', gone, reason);
  }

  /** Terminates quietly what is left of a member already removed (no decision: nothing ran that we chose to stop). */
  reap(memberId: string): void {
    this.reaping.add(memberId);
    this.effect(
      this.iaas
        .terminate(memberId)
        .finally(() => this.reaping.delete(memberId))
        .then(
          (result) => {
            if (result.outcome === 'stuck') this.leftovers.add(memberId);
            else this.leftovers.delete(memberId);
            const level = result.outcome === 'terminated' || result.outcome === 'killed' ? 'info' : 'debug';
            this.log[level]('leftovers of a removed member reaped', {
              event: 'autoscaler.member_reaped',
              memberId,
              outcome: result.outcome,
            });
          },
          (error: unknown) => {
            this.leftovers.add(memberId);
            this.log.warn('reaping a removed member failed, retried at the next tick', {
              event: 'autoscaler.reap_failed',
              memberId,
              error,
            });
          },
        ),
    );
  }

  /**
   * Closing: drains under way (and their delays) end now without stopping
   * their members, which stay Terminating in the registry with their
   * drainUntil; the next life, or the other node, finishes them.
   */
  abortDrains(): void {
    this.closing.abort();
  }

  /** Resolves once every spawn and terminate under way has finished and its completion has run. */
  async settle(): Promise<void> {
    while (this.effects.size > 0) await Promise.allSettled([...this.effects]);
  }

  private spawned(memberId: string, instance: MemberInstance): void {
    const member = this.map.get(memberId);
    if (!member || !isLive(member)) {
      // Removed while it was starting (a fault or a timeout in between): nobody wants it.
      this.log.warn('spawned member no longer wanted, terminating it', {
        event: 'autoscaler.spawned_unwanted',
        memberId,
      });
      this.reap(memberId);
      return;
    }
    this.counted.spawned += 1;
    const updated = { ...member, instance };
    this.set(updated);
    this.sink.announce('MemberCreatedEvent', updated);
    this.completed({ type: 'spawned', memberId, instance });
  }

  private notRecorded(memberId: string): void {
    const member = this.map.get(memberId);
    if (!member) return;
    this.log.warn('spawn not started: the registry did not record the member', {
      event: 'autoscaler.spawn_not_recorded',
      memberId,
    });
    this.remove(member, 'spawn not started: the registry did not record its intent', undefined);
    this.completed({ type: 'spawnNotRecorded', memberId });
  }

  private failed(memberId: string, error: unknown): void {
    this.counted.spawnFailed += 1;
    const member = this.map.get(memberId);
    if (!member) return;
    this.remove(member, `spawn failed: ${error instanceof Error ? error.message : String(error)}`, undefined);
    this.completed({ type: 'spawnFailed', memberId, error });
  }

  /** Terminates once `intent` (the Terminating row) is written; an unwritten intent waits for the next tick. */
  private launchTerminate(memberId: string, epoch: number | undefined, intent: Promise<boolean>): void {
    if (this.stopping.has(memberId)) return;
    this.stopping.add(memberId);
    this.effect(
      intent
        .then((recorded) => {
          if (recorded) return this.stop(memberId);
          throw new RegistryError('record the terminate intent', { context: { memberId } });
        })
        .then(
          (result) => this.queue.run(() => this.stopped(memberId, result, epoch)),
          (error: unknown) =>
            this.queue.run(() =>
              this.closing.signal.aborted
                ? this.log.info('closing during a drain: the member stays Terminating for the next owner', {
                    event: 'autoscaler.drain_handed_over',
                    memberId,
                  })
                : this.log.error('terminate failed, retried at the next tick', {
                    event: 'autoscaler.terminate_failed',
                    memberId,
                    error,
                  }),
            ),
        )
        .finally(() => this.stopping.delete(memberId)),
    );
  }

  private stopped(memberId: string, result: TerminateResult, epoch: number | undefined): void {
    const member = this.map.get(memberId);
    if (member?.state !== 'Terminating') return;
    this.counted.terminated += 1;
    if (result.outcome === 'stuck') {
      this.leftovers.add(memberId);
      this.log.warn('member left processes behind after SIGKILL; terminated again every tick', {
        event: 'autoscaler.member_stuck',
        memberId,
      });
    }
    const drained = result.drain === 'idle' ? 'drained; ' : result.drain === 'timeout' ? 'drain timed out; ' : '';
    this.remove(member, `${member.reason}; ${drained}${result.outcome} in ${Math.round(result.elapsedMs)} ms`, epoch);
    this.completed({ type: 'terminated', memberId, epoch });
  }

  private effect(promise: Promise<unknown>): void {
    const tracked = promise.catch((error: unknown) =>
      this.log.error('member task failed', { event: 'autoscaler.member_task_failed', error }),
    );
    this.effects.add(tracked);
    void tracked.finally(() => this.effects.delete(tracked));
  }
}
