import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { clusterProbesSchema } from './config-schema.js';
import { ConfigError } from './errors.js';

const cluster = (probes: unknown) => ({ id: 'php', cartridgeType: 'php', min: 1, max: 2, probes });

function issuesOf(probes: unknown): string[] {
  try {
    resolveConfig({ clusters: [cluster(probes)] }, { env: {} });
  } catch (error) {
    if (error instanceof ConfigError) return (error.issues ?? []).map((i) => `${i.key}: ${i.reason}`);
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('clusters[].probes (README "Probes")', () => {
  it("defaults to today's checks minus the single-miss kill: liveness GET /stats failing after 3, startup GET /healthz, no readiness", () => {
    const config = resolveConfig({ clusters: [{ id: 'php', cartridgeType: 'php', min: 1, max: 2 }] }, { env: {} });
    expect(config.clusters[0]?.probes).toEqual({
      liveness: {
        type: 'http',
        path: '/stats',
        expectStatus: 200,
        timeoutMs: 2_000,
        failureThreshold: 3,
        successThreshold: 1,
      },
      startup: { type: 'http', path: '/healthz', expectStatus: 200, timeoutMs: 2_000, successThreshold: 1 },
    });
    // No period: the agent's stat interval (liveness, readiness) or activation poll (startup).
    expect(config.clusters[0]?.probes.liveness).not.toHaveProperty('periodMs');
  });

  it('takes http, tcp and exec probes, each with its own keys, and fills the rest', () => {
    const config = resolveConfig(
      {
        clusters: [
          cluster({
            liveness: { type: 'tcp', port: 8080, periodMs: 5_000, failureThreshold: 5 },
            readiness: { type: 'http', path: '/ready', expectStatus: 204 },
            startup: { type: 'exec', command: ['/usr/local/bin/started', '--quiet'], timeoutMs: 10_000 },
          }),
        ],
      },
      { env: {} },
    );
    expect(config.clusters[0]?.probes).toEqual({
      liveness: {
        type: 'tcp',
        port: 8080,
        periodMs: 5_000,
        timeoutMs: 2_000,
        failureThreshold: 5,
        successThreshold: 1,
      },
      readiness: {
        type: 'http',
        path: '/ready',
        expectStatus: 204,
        timeoutMs: 2_000,
        failureThreshold: 3,
        successThreshold: 1,
      },
      startup: { type: 'exec', command: ['/usr/local/bin/started', '--quiet'], timeoutMs: 10_000, successThreshold: 1 },
    });
    // A readiness http probe without a path reads /stats, as liveness does.
    expect(clusterProbesSchema.parse({ readiness: { type: 'http' } }).readiness).toMatchObject({ path: '/stats' });
  });

  it('refuses, naming the key, what a probe of its type does not take and values out of range', () => {
    expect(issuesOf({ liveness: { type: 'tcp', path: '/x' } })).toEqual([
      'clusters.0.probes.liveness: Unrecognized key: "path"',
    ]);
    expect(issuesOf({ liveness: { type: 'exec' } })).toEqual([
      'clusters.0.probes.liveness.command: Invalid input: expected array, received undefined',
    ]);
    expect(issuesOf({ liveness: { type: 'exec', command: [] } })).toEqual([
      'clusters.0.probes.liveness.command: must name the program',
    ]);
    // An argv, never a shell line: a string is refused.
    expect(issuesOf({ readiness: { type: 'exec', command: 'curl -f localhost/ready' } })).toHaveLength(1);
    expect(issuesOf({ liveness: { type: 'grpc' } })).toEqual([
      'clusters.0.probes.liveness.type: must have type http, tcp or exec',
    ]);
    expect(issuesOf({ liveness: { type: 'http', path: 'stats' } })[0]).toMatch(/path: must start with \//);
    expect(issuesOf({ liveness: { type: 'http', path: '/a b' } })[0]).toMatch(/no space or control character/);
    expect(issuesOf({ liveness: { type: 'http', failureThreshold: 0 } })[0]).toMatch(/liveness\.failureThreshold/);
    expect(issuesOf({ liveness: { type: 'http', timeoutMs: 0 } })[0]).toMatch(/liveness\.timeoutMs/);
    expect(issuesOf({ liveness: { type: 'http', expectStatus: 99 } })[0]).toMatch(/liveness\.expectStatus/);
    expect(issuesOf({ liveness: { type: 'tcp', port: 0 } })[0]).toMatch(/liveness\.port/);
    expect(issuesOf({ liveness: { type: 'exec', command: ['a\u0000b'] } })[0]).toMatch(/no NUL character/);
    expect(issuesOf({ livenes: { type: 'http' } })).toEqual(['clusters.0.probes: Unrecognized key: "livenes"']);
  });

  it('gives the startup probe no failureThreshold, saying what bounds a start instead', () => {
    expect(issuesOf({ startup: { type: 'http', failureThreshold: 30 } })).toEqual([
      'clusters.0.probes.startup.failureThreshold: the startup probe has no failureThreshold: a member that never passes it is replaced after autoscaler.pendingTimeoutMs',
    ]);
  });

  it('keeps the probes small enough for the member environment', () => {
    const command = Array.from({ length: 32 }, () => 'x'.repeat(1_000));
    const issues = issuesOf({
      liveness: { type: 'exec', command },
      readiness: { type: 'exec', command },
    });
    expect(issues).toEqual([
      'clusters.0.probes: must encode within 16384 characters of JSON (the member environment carries them)',
    ]);
  });
});

describe('clusters[].drainTimeoutMs and drainDelayMs (README "Autoscaler → Graceful drain")', () => {
  const drainIssues = (drain: Record<string, unknown>): string[] => {
    try {
      resolveConfig({ clusters: [{ id: 'php', cartridgeType: 'php', min: 1, max: 2, ...drain }] }, { env: {} });
      return [];
    } catch (error) {
      if (error instanceof ConfigError) return (error.issues ?? []).map((i) => `${i.key}: ${i.reason}`);
      throw error;
    }
  };

  it('refuses a delay that takes the whole drain, and a time no timer can wait; 0 turns the drain off whatever the delay', () => {
    expect(drainIssues({ drainTimeoutMs: 2_000 })).toEqual([
      expect.stringMatching(/^clusters\.0\.drainDelayMs: must be less than drainTimeoutMs/),
    ]);
    expect(drainIssues({ drainTimeoutMs: 2_000, drainDelayMs: 1_999 })).toEqual([]);
    expect(drainIssues({ drainTimeoutMs: 0 })).toEqual([]);
    expect(drainIssues({ drainTimeoutMs: 2 ** 31 })).toHaveLength(1);
  });
});
