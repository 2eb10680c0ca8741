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

/** What the workload answered on `GET /stats`. */
export type ProbeResult =
  | { type: 'ok'; requestsInFlight: number }
  /** No HTTP answer at all (refused, reset, timed out): the port is not open (Stratos `ports_not_open`). */
  | { type: 'no-answer'; reason: string }
  /** It answered, but not with valid stats: the port is open, the figure unknown. */
  | { type: 'invalid'; reason: string };

export interface WorkloadProbe {
  stats(): Promise<ProbeResult>;
  /** Whether `GET /healthz` answers 200: the activation check. */
  healthy(): Promise<boolean>;
}

export interface StatCollectorCounters {
  collections: number;
  /** Collections where the workload port did not answer (after it had answered once): reported as ports_not_open. */
  portsNotOpen: number;
  /**
   * Collections where the workload port did not answer before it ever had
   * (and before activation): a workload still starting, not a fault;
   * requests_in_flight left out, nothing reported in its place.
   */
  portNotYetOpen: number;
  /** Answers of the workload that were not valid stats (logged, figure left out). */
  invalidWorkloadStats: number;
  /** Machine figures that were not finite numbers (left out). */
  invalidSystemStats: number;
}

const round2 = (value: number) => Math.round(value * 100) / 100;

/**
 * One round of the Stratos agent's health stats: load average as a share of
 * the cores, memory consumption, and the workload's requests in flight, or
 * `ports_not_open` (value 1) when its port does not answer, which the SP
 * treats as an immediate fault.
 *
 * A port that has never answered is a workload still starting, not a closed
 * one: until the port answered once (a stats answer, valid or not) or the
 * agent activated (`workloadAnswered()`, its `/healthz` check passed), a
 * collection whose probe gets no answer leaves requests_in_flight out and
 * reports no ports_not_open (logged once, counted in `portNotYetOpen`).
 * A workload that never opens its port is then the autoscaler's pending
 * timeout to deal with, not an immediate fault that respawns it for ever.
 */
export class StatCollector {
  readonly counters: StatCollectorCounters = {
    collections: 0,
    portsNotOpen: 0,
    invalidWorkloadStats: 0,
    invalidSystemStats: 0,
    portNotYetOpen: 0,
  };
  private portWasOpen = true;
  /** The workload's port answered at least once (or the agent activated): from then on a closed port is a fault. */
  private portEverAnswered = false;
  private notYetOpenLogged = false;

  constructor(
    private readonly member: MemberIdentity,
    private readonly system: SystemStats,
    private readonly probe: WorkloadProbe,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** The workload answered (the agent's activation check passed): a port that stops answering is ports_not_open. */
  workloadAnswered(): void {
    this.portEverAnswered = true;
  }

  async collect(): Promise<HealthStat[]> {
    this.counters.collections += 1;
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
    switch (probe.type) {
      case 'ok':
        add('requests_in_flight', probe.requestsInFlight);
        if (!this.portWasOpen) this.log.info('workload port answers again', { event: 'agent.workload_port_open' });
        this.portWasOpen = true;
        this.portEverAnswered = true;
        break;
      case 'no-answer':
        if (!this.portEverAnswered) {
          // Still starting: not a fault. Said once, counted every time.
          this.counters.portNotYetOpen += 1;
          if (!this.notYetOpenLogged) {
            this.notYetOpenLogged = true;
            this.log.info('workload port not open yet: requests_in_flight left out until it answers', {
              event: 'agent.workload_port_not_yet_open',
              reason: probe.reason,
            });
          }
          break;
        }
        this.counters.portsNotOpen += 1;
        add('ports_not_open', 1);
        // Once per change, not per interval: an instance that is gone stays gone.
        if (this.portWasOpen) {
          this.log.warn('workload port does not answer, reporting ports_not_open', {
            event: 'agent.workload_port_closed',
            reason: probe.reason,
          });
        }
        this.portWasOpen = false;
        break;
      case 'invalid':
        this.counters.invalidWorkloadStats += 1;
        this.portWasOpen = true;
        this.portEverAnswered = true;
        this.log.warn('workload stats unusable, requests_in_flight left out', {
          event: 'agent.workload_stats_unusable',
          reason: probe.reason,
        });
        break;
    }
    return stats;
  }
}
