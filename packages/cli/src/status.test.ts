import { describe, expect, it } from 'vitest';
import { degraded, formatStatus, type StackStatus } from './status.js';

const status: StackStatus = {
  services: [
    { name: 'postgres', pid: 2071, state: 'up', restarts: 0 },
    { name: 'sp-1', pid: 2484, state: 'up', restarts: 1 },
    { name: 'autoscaler-a', pid: null, state: 'restarting', restarts: 3 },
  ],
  sp: [],
  brokers: [],
  clusters: [],
  actions: [],
};

describe('formatStatus', () => {
  it('shows the supervisor’s view of each service: state, pid, restarts', () => {
    const lines = formatStatus(status).split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'SERVICES',
      '  postgres       up          pid 2071     0 restarts',
      '  sp-1           up          pid 2484     1 restart',
      '  autoscaler-a   restarting  pid -        3 restarts',
    ]);
  });
});

describe('maintenance in the status', () => {
  const since = '2026-12-01T10:02:11.000Z';
  const inMaintenance: StackStatus = {
    ...status,
    services: [],
    sp: [{ node: 'sp-1', role: 'ACTIVE', epoch: 1, passiveLink: 'ready', lag: null, thriftPort: 1 }],
    clusters: [
      {
        id: 'web',
        min: 3,
        max: 3,
        faultStormHeldSince: null,
        detectorSilent: [],
        maintenance: { clusterId: 'web', memberId: null, reason: 'kernel upgrade', by: 'alice@ops-1', since },
        members: [
          {
            memberId: 'web-aaaaaa',
            state: 'Active',
            held: 'maintenance',
            maintenance: null,
            createdAt: since,
            activatedAt: since,
            address: null,
            drainingUntil: null,
            outOfService: null,
          },
          {
            memberId: 'web-bbbbbb',
            state: 'Active',
            held: null,
            maintenance: { clusterId: 'web', memberId: 'web-bbbbbb', reason: '', by: 'bob@ops-2', since },
            createdAt: since,
            activatedAt: since,
            address: null,
            drainingUntil: null,
            outOfService: null,
          },
        ],
      },
    ],
  };

  it('shows the cluster’s and each member’s maintenance, and faults held for it', () => {
    const lines = formatStatus(inMaintenance).split('\n');
    const at = lines.indexOf('CLUSTERS');
    expect(lines.slice(at + 1, at + 5)).toEqual([
      '  web (min 3, max 3): 2 member(s)',
      '    MAINTENANCE by alice@ops-1 since 10:02:11: kernel upgrade: faults held, minimum and scaling rules paused',
      '    web-aaaaaa               Active  (fault held: maintenance)',
      '    web-bbbbbb               Active  (maintenance by bob@ops-2 since 10:02:11)',
    ]);
  });

  it('is not degraded: maintenance is intended', () => {
    expect(degraded(inMaintenance)).toEqual([]);
  });
});

describe('draining and out-of-service members in the status', () => {
  it('shows until when one drains and since when one is out of service; neither is degraded', () => {
    const at = '2026-12-01T10:02:11.000Z';
    const draining: StackStatus = {
      ...status,
      services: [],
      sp: [{ node: 'sp-1', role: 'ACTIVE', epoch: 1, passiveLink: 'ready', lag: null, thriftPort: 1 }],
      clusters: [
        {
          id: 'web',
          min: 1,
          max: 1,
          faultStormHeldSince: null,
          detectorSilent: [],
          maintenance: null,
          members: [
            {
              memberId: 'web-aaaaaa',
              state: 'Terminating',
              held: null,
              maintenance: null,
              createdAt: at,
              activatedAt: at,
              address: '127.0.0.1:40001',
              drainingUntil: '2026-12-01T10:02:41.000Z',
              outOfService: null,
            },
            {
              memberId: 'web-bbbbbb',
              state: 'Active',
              held: null,
              maintenance: null,
              createdAt: at,
              activatedAt: at,
              address: '127.0.0.1:40002',
              drainingUntil: null,
              outOfService: { since: at, reason: 'GET /ready answered 503\x1b[2J' },
            },
          ],
        },
      ],
    };
    const lines = formatStatus(draining).split('\n');
    expect(lines).toContain('    web-aaaaaa               Terminating  (draining until 10:02:41)');
    // Its readiness probe fails: shown (what the agent said, escaped), not a fault, not degraded.
    expect(lines).toContain(
      '    web-bbbbbb               Active  (out of service since 10:02:11: GET /ready answered 503\\u001b[2J)',
    );
    expect(degraded(draining)).toEqual([]);
  });
});
