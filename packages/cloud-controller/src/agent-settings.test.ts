import { resolveConfig } from '@faultline/core';
import { agentSettingsSchema } from '@faultline/protocol';
import { describe, expect, it } from 'vitest';
import { agentSettingsFrom } from './agent-settings.js';

describe('agentSettingsFrom', () => {
  it('tells the agents the SP Thrift ports, the broker pair and intervals, and to await the autoscaler', () => {
    const config = resolveConfig(
      {
        agent: { statIntervalMs: 2_000, maxUnackedBatches: 50 },
        messaging: { republishIntervalMs: 9_000 },
      },
      { env: {} },
    );
    const settings = agentSettingsFrom(config);
    expect(settings).toEqual({
      spEndpoints: config.streamProcessor.nodes.map((node) => ({ host: node.host, port: node.thriftPort })),
      brokers: config.brokers.nodes.map(({ name, host, port }) => ({ name, host, port })),
      statIntervalMs: 2_000,
      maxUnackedBatches: 50,
      // README "Operations → Agent metrics": loopback, a port the OS picks.
      metrics: true,
      metricsHost: '127.0.0.1',
      metricsPort: 0,
      republishIntervalMs: 9_000,
      awaitSubscribers: ['autoscaler'],
    });
    expect(settings.spEndpoints).toHaveLength(2);
    // No shared broker account: each agent logs in as its own member (the driver's credential).
    expect(settings).not.toHaveProperty('credentials');
    expect(agentSettingsSchema.safeParse(settings).success).toBe(true);
  });
});
