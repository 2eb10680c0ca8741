import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { testMember } from '@faultline/protocol/testing';
import { describe, expect, it } from 'vitest';
import { type ProbeResult, StatCollector, type SystemStats } from './stats.js';
import { parseWorkloadStats } from './workload-probe.js';

const member = testMember('m-1');

function collector(system: Partial<SystemStats>, result: ProbeResult) {
  const full: SystemStats = {
    loadAverage: () => 0.5,
    cpuCount: () => 4,
    freeMemoryBytes: () => 3 * 2 ** 30,
    totalMemoryBytes: () => 4 * 2 ** 30,
    ...system,
  };
  const logger = createMemoryLogger();
  const state = { result, down: false };
  const probe = { stats: async () => state.result };
  const c = new StatCollector(member, full, probe, systemClock, logger, () => state.down);
  return { collector: c, logger, state };
}

const figures = (stats: { healthDescription: string; value: number }[]) =>
  Object.fromEntries(stats.map((s) => [s.healthDescription, s.value]));

describe('StatCollector', () => {
  it('reports load as a share of the cores, memory in use and the requests in flight', async () => {
    const { collector: c } = collector({}, { type: 'ok', requestsInFlight: 7 });
    const stats = await c.collect();
    expect(figures(stats)).toEqual({ load_average: 12.5, memory_consumption: 25, requests_in_flight: 7 });
    expect(stats[0]).toMatchObject(member);
  });

  it('one missed GET /stats is no ports_not_open: the figure is left out, liveness decides (README "Probes")', async () => {
    // The single-miss kill: a first version reported ports_not_open here, and the SP faulted the member at once.
    const { collector: c, state, logger } = collector({}, { type: 'ok', requestsInFlight: 2 });
    await c.collect();
    state.result = { type: 'no-answer', reason: 'GET /stats on the workload: no answer within 2000 ms' };
    expect(figures(await c.collect())).toEqual({ load_average: 12.5, memory_consumption: 25 });
    expect(figures(await c.collect())).toEqual({ load_average: 12.5, memory_consumption: 25 });
    expect(c.counters).toMatchObject({ portsNotOpen: 0, statsUnanswered: 2 });
    state.result = { type: 'ok', requestsInFlight: 1 };
    expect(figures(await c.collect())).toMatchObject({ requests_in_flight: 1 });
    // One line when it stops answering, one when it answers again: not one per round.
    expect(logger.events()).toEqual(['agent.workload_stats_unanswered', 'agent.workload_stats_answered']);
  });

  it('while liveness is down a round is ports_not_open (1) alone, without reading the stats', async () => {
    const { collector: c, state } = collector({}, { type: 'ok', requestsInFlight: 2 });
    let reads = 0;
    const counting = new StatCollector(
      member,
      { loadAverage: () => 0.5, cpuCount: () => 4, freeMemoryBytes: () => 1, totalMemoryBytes: () => 2 },
      {
        stats: async () => {
          reads += 1;
          return { type: 'ok', requestsInFlight: 2 };
        },
      },
      systemClock,
      createMemoryLogger(),
      () => true,
    );
    const down = await counting.collect();
    expect(down.map((s) => [s.healthDescription, s.value])).toEqual([['ports_not_open', 1]]);
    expect(down[0]).toMatchObject(member);
    expect(reads).toBe(0);
    expect(counting.counters.portsNotOpen).toBe(1);
    // Liveness failing while the stats are read: the round says so, and nothing else.
    state.result = { type: 'no-answer', reason: 'hung' };
    const pending = c.collect();
    state.down = true;
    expect(figures(await pending)).toEqual({ ports_not_open: 1 });
    state.down = false;
    state.result = { type: 'ok', requestsInFlight: 0 };
    expect(figures(await c.collect())).toEqual({ load_average: 12.5, memory_consumption: 25, requests_in_flight: 0 });
  });

  it('leaves out what it cannot trust, with a counter and a log line', async () => {
    const { collector: c, logger } = collector(
      { loadAverage: () => Number.NaN, totalMemoryBytes: () => 0 },
      { type: 'invalid', reason: 'HTTP 500' },
    );
    expect(await c.collect()).toEqual([]);
    expect(c.counters).toMatchObject({ invalidSystemStats: 2, invalidWorkloadStats: 1, portsNotOpen: 0 });
    expect(logger.events()).toEqual([
      'agent.machine_figure_unusable',
      'agent.machine_figure_unusable',
      'agent.workload_stats_unusable',
    ]);
  });

  it('never reports more than 100 % memory nor divides the load by zero cores', async () => {
    const { collector: c } = collector(
      { cpuCount: () => 0, loadAverage: () => 0.25, freeMemoryBytes: () => -1 },
      { type: 'ok', requestsInFlight: 0 },
    );
    expect(figures(await c.collect())).toMatchObject({ load_average: 25, memory_consumption: 100 });
  });
});

describe('parseWorkloadStats', () => {
  it('reads requestsInFlight from a 200 JSON answer and names what is wrong in others', () => {
    expect(parseWorkloadStats({ status: 200, body: '{"requestsInFlight":3,"served":9}' })).toEqual({
      type: 'ok',
      requestsInFlight: 3,
    });
    expect(parseWorkloadStats({ status: 503, body: '' })).toEqual({ type: 'invalid', reason: 'HTTP 503' });
    expect(parseWorkloadStats({ status: 200, body: '<html>' })).toEqual({
      type: 'invalid',
      reason: 'body is not JSON',
    });
    expect(parseWorkloadStats({ status: 200, body: '{"requestsInFlight":-1}' })).toEqual({
      type: 'invalid',
      reason: 'requestsInFlight is -1',
    });
    expect(parseWorkloadStats({ status: 200, body: 'null' })).toEqual({
      type: 'invalid',
      reason: 'requestsInFlight is missing',
    });
  });
});
