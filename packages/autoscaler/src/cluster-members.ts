import type { Iaas, MemberIdentity, MemberInstance, MemberSpec, TerminateResult } from '@faultline/cloud-controller';
import type { Clock, Logger } from '@faultline/core';
import type { Decision } from './decisions.js';
import { activatedAtOf, isLive, type LiveMember, type MemberContext } from './member.js';
import type { ClusterPolicy } from './policy.js';
import type { SerialQueue } from './serial-queue.js';
import type { MonitorCounters } from './status.js';

/** Where a monitor's decisions go: the log, the registry, the brokers (the AutoscalerCore implements it). */
export interface MonitorSink {
  /** One decision: one log record, one registry action, one `autoscaler/` message where one exists. */
  decide(decision: Decision): void;
  /** A member's context changed: its registry row is written. */
  persist(member: MemberContext): void;
  /** `topology/MemberCreatedEvent` / `MemberTerminatedEvent`. */
  announce(type: 'MemberCreatedEvent' | 'MemberTerminatedEvent', member: MemberContext, reason?: string): void;
}

export interface ClusterMembersOptions {
  policy: ClusterPolicy;
  iaas: Iaas;
  sink: MonitorSink;
  clock: Clock;
  log: Logger;
  counters: MonitorCounters;
  /** The monitor's queue: completions of spawns and terminations run on it. */
  queue: SerialQueue;
  spec(identity: MemberIdentity): MemberSpec;
  newMemberId(clusterId: string): string;
  terminateGraceMs: number | undefined;
  /** A member left the context: the monitor drops what it kept about it (held fault, load). */
  forget(memberId: string): void;
  /** A terminate finished and the member was removed: the monitor applies the minimum rule. */
  terminated(epoch: number | undefined): void;
  /** A spawn failed and the member was removed: the monitor backs off and applies the minimum rule. */
  spawnFailed(memberId: string, error: unknown): void;
}

type Base = Omit<Extract<MemberContext, { state: 'Created' }>, 'state'>;

export const baseOf = (m: MemberContext): Base => ({
  memberId: m.memberId,
  clusterId: m.clusterId,
  clusterInstanceId: m.clusterInstanceId,
  networkPartitionId: m.networkPartitionId,
  partitionId: m.partitionId,
  cartridgeType: m.cartridgeType,
  createdAt: m.createdAt,
  instance: m.instance,
});

/**
 * The members of one cluster and what is done to them: the context map, and
 * spawns and terminations through the Iaas. Those run outside the monitor's
 * queue (a slow spawn must not delay another member's fault) and queue their
 * completion on it, so every state change still happens one at a time.
 */
export class ClusterMembers {
  private readonly map = new Map<string, MemberContext>();
  private readonly effects = new Set<Promise<unknown>>();
  /** Members with a terminate call under way. */
  private readonly stopping = new Set<string>();
  /** Removed members the Iaas could not stop completely ('stuck'): terminated again every tick. */
  private readonly leftovers = new Set<string>();

  constructor(private readonly o: ClusterMembersOptions) {}

  get size(): number {
    return this.map.size;
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

  /** Records a new context of a member and persists it. */
  set(member: MemberContext): void {
    this.map.set(member.memberId, member);
    this.o.sink.persist(member);
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
  ): void {
    const { policy } = this.o;
    let memberId = this.o.newMemberId(policy.id);
    while (this.map.has(memberId)) memberId = this.o.newMemberId(policy.id);
    const identity: MemberIdentity = {
      memberId,
      clusterId: policy.id,
      clusterInstanceId: policy.clusterInstanceId,
      networkPartitionId: partition.networkPartitionId,
      partitionId: partition.id,
      cartridgeType: policy.cartridgeType,
    };
    this.set({ ...identity, state: 'Created', createdAt: this.o.clock.now(), instance: undefined });
    this.decide({ action, memberId, reason, epoch });
    this.effect(
      this.o.iaas.spawn(this.o.spec(identity)).then(
        (instance) => this.o.queue.run(() => this.spawned(memberId, instance)),
        (error: unknown) => this.o.queue.run(() => this.failed(memberId, error)),
      ),
    );
  }

  /** Terminating, then (once the Iaas is done) removed. */
  terminate(member: LiveMember, reason: string, epoch: number | undefined): void {
    const now = this.o.clock.now();
    this.set({ ...baseOf(member), state: 'Terminating', reason, since: now, activatedAt: activatedAtOf(member) });
    this.launchTerminate(member.memberId, epoch);
  }

  /** Every tick: terminations that failed or were interrupted are tried again, leftovers reaped again. */
  retryStopping(): void {
    for (const memberId of this.leftovers) this.reap(memberId);
    for (const member of this.map.values()) {
      if (member.state === 'Terminating') this.launchTerminate(member.memberId, undefined);
    }
  }

  /** Out of the context, Terminated in the registry, MemberTerminatedEvent on the topology. */
  remove(member: MemberContext, reason: string, epoch: number | undefined): void {
    const gone: MemberContext = {
      ...baseOf(member),
      state: 'Terminated',
      reason,
      terminatedAt: this.o.clock.now(),
      activatedAt: activatedAtOf(member),
    };
    this.map.delete(member.memberId);
    this.o.forget(member.memberId);
    this.o.sink.persist(gone);
    this.decide({ action: 'MemberRemoved', memberId: member.memberId, reason, epoch });
    if (member.instance) this.o.sink.announce('MemberTerminatedEvent', gone, reason);
  }

  /** Terminates quietly what is left of a member already removed (no decision: nothing ran that we chose to stop). */
  reap(memberId: string): void {
    const { log } = this.o;
    this.effect(
      this.o.iaas.terminate(memberId).then(
        (result) => {
          if (result.outcome === 'stuck') this.leftovers.add(memberId);
          else this.leftovers.delete(memberId);
          const level = result.outcome === 'terminated' || result.outcome === 'killed' ? 'info' : 'debug';
          log[level]('leftovers of a removed member reaped', { memberId, outcome: result.outcome });
        },
        (error: unknown) => {
          this.leftovers.add(memberId);
          log.warn('reaping a removed member failed, retried at the next tick', { memberId, error });
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
      this.o.log.warn('spawned member no longer wanted, terminating it', { memberId });
      this.reap(memberId);
      return;
    }
    this.o.counters.spawned += 1;
    const updated = { ...member, instance };
    this.set(updated);
    this.o.sink.announce('MemberCreatedEvent', updated);
    this.o.log.info('member created', { memberId, address: `${instance.address.host}:${instance.address.port}` });
  }

  private failed(memberId: string, error: unknown): void {
    this.o.counters.spawnFailed += 1;
    const member = this.map.get(memberId);
    if (!member) return;
    this.remove(member, `spawn failed: ${error instanceof Error ? error.message : String(error)}`, undefined);
    this.o.spawnFailed(memberId, error);
  }

  private launchTerminate(memberId: string, epoch: number | undefined): void {
    if (this.stopping.has(memberId)) return;
    this.stopping.add(memberId);
    const grace = this.o.terminateGraceMs === undefined ? {} : { graceMs: this.o.terminateGraceMs };
    this.effect(
      this.o.iaas
        .terminate(memberId, grace)
        .then(
          (result) => this.o.queue.run(() => this.stopped(memberId, result, epoch)),
          (error: unknown) =>
            this.o.queue.run(() => this.o.log.error('terminate failed, retried at the next tick', { memberId, error })),
        )
        .finally(() => this.stopping.delete(memberId)),
    );
  }

  private stopped(memberId: string, result: TerminateResult, epoch: number | undefined): void {
    const member = this.map.get(memberId);
    if (member?.state !== 'Terminating') return;
    this.o.counters.terminated += 1;
    if (result.outcome === 'stuck') {
      this.leftovers.add(memberId);
      this.o.log.warn('member left processes behind after SIGKILL; terminated again every tick', { memberId });
    }
    this.remove(member, `${member.reason}; ${result.outcome} in ${Math.round(result.elapsedMs)} ms`, epoch);
    this.o.terminated(epoch);
  }

  private decide(decision: Omit<Decision, 'clusterId'>): void {
    this.o.sink.decide({ ...decision, clusterId: this.o.policy.id });
  }

  private effect(promise: Promise<unknown>): void {
    const tracked = promise.catch((error: unknown) => this.o.log.error('member task failed', { error }));
    this.effects.add(tracked);
    void tracked.finally(() => this.effects.delete(tracked));
  }
}
