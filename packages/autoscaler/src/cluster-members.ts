import type { CartridgeMemberIdentity, Iaas, MemberInstance, TerminateResult } from '@faultline/cloud-controller';
import type { Clock, Logger } from '@faultline/core';
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

  /** Terminating, then (once the Iaas is done) removed. */
  terminate(member: LiveMember, reason: string, epoch: number | undefined): void {
    const now = this.clock.now();
    const intent = this.set({
      ...baseOf(member),
      state: 'Terminating',
      reason,
      since: now,
      activatedAt: activatedAtOf(member),
    });
    this.launchTerminate(member.memberId, epoch, intent);
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
          if (recorded) return this.iaas.terminate(memberId, { graceMs: this.terminateGraceMs });
          throw new RegistryError('record the terminate intent', { context: { memberId } });
        })
        .then(
          (result) => this.queue.run(() => this.stopped(memberId, result, epoch)),
          (error: unknown) =>
            this.queue.run(() =>
              this.log.error('terminate failed, retried at the next tick', {
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
    this.remove(member, `${member.reason}; ${result.outcome} in ${Math.round(result.elapsedMs)} ms`, epoch);
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
