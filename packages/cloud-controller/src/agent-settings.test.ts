import { resolveConfig } from '@faultline/core';
import { agentSettingsSchema, decodeAgentEnv, encodeMemberEnv, encodeWorkloadPort } from '@faultline/protocol';
import { memberEnvInput } from '@faultline/protocol/testing';
import { describe, expect, it } from 'vitest';
import { agentSettingsFrom, memberAgentSettings } from './agent-settings.js';
import { checkAgentSettings } from './local-iaas-options.js';

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

describe('probes per cluster (README "Probes")', () => {
  const config = resolveConfig(
    {
      clusters: [
        {
          id: 'php',
          cartridgeType: 'php',
          min: 1,
          max: 2,
          probes: { liveness: { type: 'tcp', failureThreshold: 5 }, readiness: { type: 'http', path: '/ready' } },
        },
        { id: 'tomcat', cartridgeType: 'tomcat', min: 1, max: 2 },
      ],
    },
    { env: {} },
  );

  it("tells each member its own cluster's probes, and none to a member of a cluster the config does not name", () => {
    const settings = agentSettingsFrom(config);
    const php = memberAgentSettings(settings, 'php');
    expect(php.probes).toEqual(config.clusters[0]?.probes);
    expect(php).not.toHaveProperty('clusterProbes');
    expect(memberAgentSettings(settings, 'tomcat').probes).toEqual(config.clusters[1]?.probes);
    // Not named: the agent's own defaults; an inherited key is not a cluster.
    for (const clusterId of ['other', 'constructor', '__proto__']) {
      expect(memberAgentSettings(settings, clusterId)).not.toHaveProperty('probes');
    }
    expect(agentSettingsSchema.safeParse(php).success).toBe(true);
  });

  it('reach the agent through the member environment exactly as configured', () => {
    const agent = memberAgentSettings(agentSettingsFrom(config), 'php');
    const env = {
      ...encodeMemberEnv({ ...memberEnvInput, agent, member: { ...memberEnvInput.member, clusterId: 'php' } }),
      ...encodeWorkloadPort(41_000),
    };
    const decoded = decodeAgentEnv(env);
    expect(decoded.ok && decoded.value.agent.probes).toEqual(config.clusters[0]?.probes);
  });

  it('a bad probe in the settings refuses the spawn with a named error, never a crash', () => {
    const agent = {
      ...memberAgentSettings(agentSettingsFrom(config), 'php'),
      probes: { liveness: { type: 'exec', command: [] } } as never,
    };
    const checked = checkAgentSettings(agent, 'php-m-1');
    expect(checked.ok).toBe(false);
    expect(!checked.ok && checked.error.code).toBe('FL_ERR_MEMBER_SPEC_INVALID');
    expect(!checked.ok && checked.error.message).toMatch(/agent\.probes\.liveness\.command: must name the program/);
  });
});
