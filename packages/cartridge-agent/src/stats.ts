import os from 'node:os';
import type { Clock, Logger } from '@faultline/core';
import type { HealthDescription, HealthStat, MemberIdentity } from '@faultline/protocol';

/** The machine figures the agent reports; an interface so tests can pin them. */
export interface SystemStats {
  /** 1-minute load average. */
  loadAverage(): number;
  cpuCount(): number;
  freeMemoryBytes(): number;
  totalMemoryBytes(): number;
}

export const osSystemStats: SystemStats = {
  loadAverage: () => os.loadavg()[0] ?? 0,
  // os.cpus() is empty in some sandboxes; availableParallelism() always answers.
  cpuCount: () => os.availableParallelism(),
  freeMemoryBytes: () => os.freemem(),
  totalMemoryBytes: () => os.totalmem(),
};

/** What the workload answered on `GET /stats`: the figure requests_in_flight comes from. */
export type ProbeResult =
  | { type: 'ok'; requestsInFlight: number }
  /** No HTTP answer at all (refused, reset, timed out): no figure this round; a fault only if liveness says so. */
  | { type: 'no-answer'; reason: string }
  /** It answered, but not with valid stats: the port is open, the figure unknown. */
  | { type: 'invalid'; reason: string };

/** Where requests_in_flight comes from (the workload's `GET /stats`); the probes are separate (probe-runner.ts). */
export interface WorkloadProbe {
  stats(): Promise<ProbeResult>;
}

export interface StatCollectorCounters {
  collections: number;
  /**
   * Collections that reported ports_not_open: the liveness probe had failed
   * `failureThreshold` times in a row (README "Probes"). Such a collection
   * reports nothing else.
   */
  portsNotOpen: number;
  /** Collections whose `GET /stats` got no answer: requests_in_flight left out, nothing reported in its place. */
  statsUnanswered: number;
  /** Answers of the workload that were not valid stats (logged, figure left out). */
  invalidWorkloadStats: number;
  /** Machine figures that were not finite numbers (left out). */
  invalidSystemStats: number;
}

const round2 = (value: number) => Math.round(value * 100) / 100;

/**
 * One round of the Stratos agent's health stats: load average as a share of
 * the cores, memory consumption, and the workload's requests in flight.
 *
 * Whether the workload is down is the liveness probe's to say, not one
 * missed `GET /stats`: while `livenessDown()` holds, a round is
 * `ports_not_open` (value 1) alone, which the SP treats as an immediate
 * fault (README "Probes"). Alone, because a faulted member's next machine
 * figures would start a new life at the SP and so a new fault every round.
 * A `GET /stats` that gets no answer leaves requests_in_flight out (logged
 * once per change, counted in `statsUnanswered`): a slow answer is no fault,
 * and a workload still starting is the startup probe's and the pending
 * timeout's.
 */
export class StatCollector {
  readonly counters: StatCollectorCounters = {
    collections: 0,
    portsNotOpen: 0,
    statsUnanswered: 0,
    invalidWorkloadStats: 0,
    invalidSystemStats: 0,
  };
  /** The last `GET /stats` got no answer (logged once per change, not per round). */
  private unanswered = false;

  constructor(
    private readonly member: MemberIdentity,
    private readonly system: SystemStats,
    private readonly probe: WorkloadProbe,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Whether the liveness probe has failed past its threshold (and not passed again since). */
    private readonly livenessDown: () => boolean = () => false,
  ) {}

  /** The stat that says the workload is down: liveness failed past its threshold. */
  downReport(): HealthStat[] {
    return [{ ...this.member, healthDescription: 'ports_not_open', value: 1, timestamp: this.clock.now() }];
  }

  async collect(): Promise<HealthStat[]> {
    this.counters.collections += 1;
    if (this.livenessDown()) {
      this.counters.portsNotOpen += 1;
      return this.downReport();
    }
    const stats: HealthStat[] = [];
    const add = (healthDescription: HealthDescription, value: number) => {
      stats.push({ ...this.member, healthDescription, value, timestamp: this.clock.now() });
    };
    const cores = this.system.cpuCount();
    const load = (this.system.loadAverage() / Math.max(1, cores)) * 100;
    const total = this.system.totalMemoryBytes();
    const memory = total > 0 ? (1 - this.system.freeMemoryBytes() / total) * 100 : Number.NaN;
    const figures: [HealthDescription, number][] = [
      ['load_average', load],
      ['memory_consumption', Math.min(100, memory)],
    ];
    for (const [name, value] of figures) {
      if (Number.isFinite(value) && value >= 0) add(name, round2(value));
      else {
        this.counters.invalidSystemStats += 1;
        this.log.warn('machine figure unusable, left out', {
          event: 'agent.machine_figure_unusable',
          healthDescription: name,
          value: String(value),
        });
      }
    }
    const probe = await this.probe.stats();
    // Liveness may have failed while the stats were read: this round then says so, and nothing else.
    if (this.livenessDown()) {
      this.counters.portsNotOpen += 1;
      return this.downReport();
    }
    switch (probe.type) {
      case 'ok':
        add('requests_in_flight', probe.requestsInFlight);
        if (this.unanswered) this.log.info('workload stats answered again', { event: 'agent.workload_stats_answered' });
        this.unanswered = false;
        break;
      case 'no-answer':
        this.counters.statsUnanswered += 1;
        if (!this.unanswered) {
          this.log.info('workload stats not answered: requests_in_flight left out (a fault only once liveness fails)', {
            event: 'agent.workload_stats_unanswered',
            reason: probe.reason,
          });
        }
        this.unanswered = true;
        break;
      case 'invalid':
        this.counters.invalidWorkloadStats += 1;
        this.unanswered = false;
        this.log.warn('workload stats unusable, requests_in_flight left out', {
          event: 'agent.workload_stats_unusable',
          reason: probe.reason,
        });
        break;
    }
    return stats;
  }
}
