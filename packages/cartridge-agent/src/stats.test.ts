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
  const state = { result };
  const probe = { stats: async () => state.result, healthy: async () => true };
  return { collector: new StatCollector(member, full, probe, systemClock, logger), logger, state };
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

  it('reports ports_not_open (1) instead of requests in flight when the port, open before, does not answer', async () => {
    const { collector: c, state } = collector({}, { type: 'ok', requestsInFlight: 2 });
    await c.collect();
    state.result = { type: 'no-answer', reason: 'ECONNREFUSED' };
    expect(figures(await c.collect())).toEqual({ load_average: 12.5, memory_consumption: 25, ports_not_open: 1 });
    expect(c.counters.portsNotOpen).toBe(1);
  });

  it('reports no ports_not_open before the workload port ever answered: a workload still starting is no fault', async () => {
    const { collector: c, logger, state } = collector({}, { type: 'no-answer', reason: 'ECONNREFUSED' });
    for (let i = 0; i < 3; i++) {
      expect(figures(await c.collect())).toEqual({ load_average: 12.5, memory_consumption: 25 });
    }
    expect(c.counters).toMatchObject({ portsNotOpen: 0, portNotYetOpen: 3 });
    // Said once, not per collection.
    expect(logger.events()).toEqual(['agent.workload_port_not_yet_open']);
    // Once it answered (even with unusable stats), a closed port is a fault again.
    state.result = { type: 'invalid', reason: 'HTTP 500' };
    await c.collect();
    state.result = { type: 'no-answer', reason: 'ECONNREFUSED' };
    expect(figures(await c.collect())).toMatchObject({ ports_not_open: 1 });
    expect(c.counters).toMatchObject({ portsNotOpen: 1, portNotYetOpen: 3 });
  });

  it('reports ports_not_open after activation even if no stats answer came before', async () => {
    const { collector: c } = collector({}, { type: 'no-answer', reason: 'ECONNRESET' });
    c.workloadAnswered();
    expect(figures(await c.collect())).toMatchObject({ ports_not_open: 1 });
    expect(c.counters).toMatchObject({ portsNotOpen: 1, portNotYetOpen: 0 });
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
